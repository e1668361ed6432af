# Source this file (from any directory) after `make build` / `make test`:
#     source setup.bash
# It puts the virtual environment, the built messages (./install) and the ROS 2 libraries on the
# paths, like `source install/setup.bash` in a colcon workspace. Afterwards `python bench/x.py`,
# `pytest`, `vla-ros ...` and the node executables (policy_node, executor_node) work.
_vla_ros_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
if [ ! -x "$_vla_ros_root/.venv/bin/python" ]; then
  echo "setup.bash: $_vla_ros_root/.venv is missing; run 'make build' first" >&2
  return 1 2>/dev/null || exit 1
fi
# shellcheck disable=SC1091
source "$_vla_ros_root/.venv/bin/activate"
_vla_ros_pyver="$(python -c 'import sys; print(f"python{sys.version_info[0]}.{sys.version_info[1]}")')"
_vla_ros_prefix="$_vla_ros_root/install"
_vla_ros_prepend() {  # _vla_ros_prepend VAR DIR: put DIR first in VAR once
  case ":${!1}:" in *":$2:"*) ;; *) export "$1=$2${!1:+:${!1}}" ;; esac
}
_vla_ros_prepend AMENT_PREFIX_PATH "$VIRTUAL_ENV"
_vla_ros_prepend AMENT_PREFIX_PATH "$_vla_ros_prefix"
_vla_ros_prepend PYTHONPATH "$_vla_ros_prefix/lib/$_vla_ros_pyver/site-packages"
_vla_ros_prepend LD_LIBRARY_PATH "$_vla_ros_prefix/lib"
_vla_ros_prepend PATH "$_vla_ros_prefix/lib/vla_ros"
_vla_ros_prepend PATH "$_vla_ros_prefix/bin"
# Test-only message packages (tf2_msgs, built by scripts/build.sh from test/msg_pkgs/) on the paths,
# so the tests and `vla-ros play` here have /tf. Not part of ./install, never shipped.
_vla_ros_test_prefix="$_vla_ros_root/build/test_msgs/install"
if [ -d "$_vla_ros_test_prefix" ]; then
  _vla_ros_prepend AMENT_PREFIX_PATH "$_vla_ros_test_prefix"
  _vla_ros_prepend PYTHONPATH "$_vla_ros_test_prefix/lib/$_vla_ros_pyver/site-packages"
  _vla_ros_prepend LD_LIBRARY_PATH "$_vla_ros_test_prefix/lib"
fi
unset _vla_ros_test_prefix
# No model hub at run time: checkpoints are local directories.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset -f _vla_ros_prepend
unset _vla_ros_pyver _vla_ros_prefix
