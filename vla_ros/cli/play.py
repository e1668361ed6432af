"""`vla-ros play`: publish a bag's topics with /clock into the live graph (where `ros2 bag play` is missing).

    vla-ros play --bag run1 [--rate 2.0] [--loop] [--topics /joint_states /camera/primary/image_raw]

Messages go out at their recorded times (scaled by --rate) on publishers of their real message
classes; /clock (rosgraph_msgs/Clock) carries the bag time - run the nodes with use_sim_time:=true.
Stop with Ctrl-C.
"""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("play", help="publish a bag's topics with /clock (ros2 bag play without rosbag2)",
                       description=__doc__.splitlines()[0])
    p.add_argument("--bag", required=True, metavar="PATH",
                   help="rosbag2 directory (mcap or sqlite3 storage), or a single .mcap or .db3 file")
    p.add_argument("--depth", type=int, default=10, metavar="N",
                   help="publisher history depth (default: 10; /tf_static keeps at least 100, transient-local)")
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (default: 1.0 = recorded rate)")
    p.add_argument("--loop", action="store_true", help="start over at the end (the clock jumps back)")
    p.add_argument("--topics", nargs="+", metavar="TOPIC", help="only these topics (default: all)")
    p.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    p.add_argument("--clock-rate", type=float, default=100.0,
                   help="/clock messages per second between messages (default: 100)")
    p.add_argument("--delay", type=float, default=0.5,
                   help="seconds to wait for discovery before the first message (default: 0.5)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from vla_ros.replay.play import play_bag

    if not args.rate > 0:
        raise ValueError(f"--rate: expected a positive factor, got {args.rate}")
    if args.depth < 1:
        raise ValueError(f"--depth: expected a publisher history depth >= 1, got {args.depth}")
    # Ctrl-C / SIGTERM end playback through the stop event: a KeyboardInterrupt raised inside a
    # threading wait would leave its lock inconsistent and print a traceback.
    stop = threading.Event()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stats = play_bag(args.bag, rate=args.rate, loop=args.loop, topics=args.topics, clock=not args.no_clock,
                         clock_rate=args.clock_rate, delay=args.delay, stop_event=stop, depth=args.depth)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if rclpy.ok():
            rclpy.shutdown()
    print(f"play: published {stats.published} messages ({stats.loops} pass(es)), {stats.clock_messages} /clock")
    return 0
