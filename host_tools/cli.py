# The `earshot` command table: each subcommand is (module, help[, name]). The module provides
# add_arguments(parser) and run(args), or add_<name>_arguments and run_<name> when one
# module serves several commands. Modules keep heavy imports (numpy, matplotlib)
# inside run(), so building the parser stays fast.
import argparse
import importlib
import sys

from host_tools.errors import CommandError

COMMANDS = {
    "sim": ("host_tools.sim.runner", "run the firmware on the virtual board"),
    "receive": ("host_tools.receiver", "receive audio sessions from paired boards and store them"),
    "pair": ("host_tools.pairing", "pair a board with this receiver: make its keys and certificates", "pair"),
    "unpair": ("host_tools.pairing", "revoke a paired board: the receiver refuses it from now on", "unpair"),
    "recordings": ("host_tools.recordings", "list, play, export, delete or purge stored sessions"),
    "web-password": ("host_tools.web.password", "set the password of the receiver's web page (scrypt hash)"),
    "monitor": ("host_tools.monitor", "show a board's serial console with a live status line"),
    "flash": ("host_tools.flash", "put MicroPython on a board (esptool): erase, write, verify"),
    "deploy": ("host_tools.deploy", "put earshot and its settings on a board that runs MicroPython"),
    "audit": ("host_tools.audit", "check a trace against the privacy invariants P1-P4"),
    "plot": ("host_tools.plot", "draw a trace as a timeline PNG"),
    "wake": ("host_tools.wake.cli", "run, measure and convert the wake-word detector"),
}


def build_parser():
    parser = argparse.ArgumentParser(prog="earshot", description="earshot host tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text, *which) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        prefix = f"_{which[0]}" if which else ""
        getattr(module, f"add{prefix}_arguments")(cmd)
        cmd.set_defaults(handler=getattr(module, f"run{prefix}"))
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args) or 0
    except CommandError as e:
        print(f"earshot: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("earshot: interrupted", file=sys.stderr)
        return 130
