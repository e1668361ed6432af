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
