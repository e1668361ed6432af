# ROS 2 message packages installed from PyPI wheels export their Python type-support targets with
# the include paths of the machine that built the wheels (/opt/python/cp311-cp311/...). CMake
# refuses to generate when an imported target names a path that does not exist. This drops such
# paths from every imported target in this directory and adds this interpreter's own Python and
# NumPy include directories instead. On a regular ROS 2 install every path exists and nothing
# changes.
function(vla_ros_fix_imported_python_includes)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
  get_property(_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    set(_dropped FALSE)
    foreach(_dir IN LISTS _dirs)
      if(_dir MATCHES "^\\$<" OR EXISTS "${_dir}")
        list(APPEND _kept "${_dir}")
      else()
        set(_dropped TRUE)
      endif()
    endforeach()
    if(_dropped)
      list(APPEND _kept ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
      list(REMOVE_DUPLICATES _kept)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
    endif()
  endforeach()
endfunction()

# When the Python environment lives inside the source tree (the repository's .venv), the numpy
# include directory that rosidl attaches to this package's own Python type-support target is
# "prefixed in the source directory", which CMake forbids in exported interfaces. It is only
# needed to build that target, so keep it for the build and leave it out of the export.
function(vla_ros_fix_own_python_includes)
  get_property(_targets DIRECTORY PROPERTY BUILDSYSTEM_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_type ${_target} TYPE)
    if(_type STREQUAL "UTILITY")
      continue()
    endif()
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_fixed "")
    foreach(_dir IN LISTS _dirs)
      if(NOT _dir MATCHES "^\\$<" AND (_dir MATCHES "^${CMAKE_SOURCE_DIR}/" OR _dir MATCHES "^${CMAKE_BINARY_DIR}/"))
        list(APPEND _fixed "$<BUILD_INTERFACE:${_dir}>")
      else()
        list(APPEND _fixed "${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
  endforeach()
endfunction()
