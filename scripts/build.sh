#!/usr/bin/env bash
# Build msg/ and install the vla_ros package into ./install with the real ament_cmake + rosidl
# machinery (from the PyPI ROS wheels in .venv), the way `colcon build --symlink-install` would.
# Symlinked install: edits to vla_ros/*.py take effect without rebuilding; new files need a rebuild
# (make test / make demo always run this first; it is incremental).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
export CMAKE_PREFIX_PATH="$venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export AMENT_PREFIX_PATH="$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
mkdir -p build
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -Wno-dev \
    -DPython3_EXECUTABLE="$venv/bin/python" \
    -DBUILD_TESTING=OFF \
    -DAMENT_CMAKE_SYMLINK_INSTALL=ON \
    -DCMAKE_INSTALL_PREFIX="$root/install" >build/cmake-configure.log 2>&1 \
    || { cat build/cmake-configure.log; echo "build.sh: cmake configure failed (log above)"; exit 1; }
fi
cmake --build build -j "$(nproc)" >build/cmake-build.log 2>&1 \
  || { tail -50 build/cmake-build.log; echo "build.sh: build failed (build/cmake-build.log)"; exit 1; }
(cd build && cmake --install .) >build/cmake-install.log 2>&1 \
  || { tail -50 build/cmake-install.log; echo "build.sh: install failed (build/cmake-install.log)"; exit 1; }
touch build/.vla_ros_installed
echo "vla_ros built and installed into $root/install (source ./setup.bash to use it)"

# Test-only message packages (test/msg_pkgs/*: tf2_msgs, not installable from PyPI), built with the
# same rosidl machinery into their own prefix, build/test_msgs/install; setup.bash puts that prefix
# on the paths when it exists. Never part of ./install.
test_prefix="$root/build/test_msgs/install"
for pkg_dir in "$root"/test/msg_pkgs/*/; do
  pkg="$(basename "$pkg_dir")"
  bdir="$root/build/test_msgs/$pkg"
  mkdir -p "$bdir"
  if [ ! -f "$bdir/CMakeCache.txt" ]; then
    cmake -S "$pkg_dir" -B "$bdir" -Wno-dev \
      -DPython3_EXECUTABLE="$venv/bin/python" \
      -DBUILD_TESTING=OFF \
      -DCMAKE_INSTALL_PREFIX="$test_prefix" >"$bdir/cmake-configure.log" 2>&1 \
      || { cat "$bdir/cmake-configure.log"; echo "build.sh: cmake configure of test package $pkg failed"; exit 1; }
  fi
  cmake --build "$bdir" -j "$(nproc)" >"$bdir/cmake-build.log" 2>&1 \
    || { tail -50 "$bdir/cmake-build.log"; echo "build.sh: build of test package $pkg failed ($bdir/cmake-build.log)"; exit 1; }
  (cd "$bdir" && cmake --install .) >"$bdir/cmake-install.log" 2>&1 \
    || { tail -50 "$bdir/cmake-install.log"; echo "build.sh: install of test package $pkg failed"; exit 1; }
done
echo "test-only message packages installed into $test_prefix"
