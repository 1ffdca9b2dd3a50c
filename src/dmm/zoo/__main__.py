"""``python -m dmm.zoo``: the released files of MODEL_ZOO.md, fetched, checked and laid out.

  list                       every released file: its name, source address, size, destination, state here
  fetch NAME... | --for X    download (resuming a partial download), unpack into MODEL_ZOO.md's layout,
                             run the README's follow-up (the per-video proposal stores), check
  check [NAME...]            verify what is on disk by its content; record its SHA-256 in
                             experiments/zoo.lock.json, and report a file that changed since

Paths are relative to --root (the folder holding experiments/, the repository root in the README).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dmm.cli import DEBUG_FLAG, DEBUG_HELP, HelpFormatter, command_parser, run
from dmm.config import get_cfg_defaults
from dmm.errors import ConfigError
from dmm.zoo.checks import Lock, Places
from dmm.zoo.fetch import check, fetch
from dmm.zoo.registry import PURPOSES, Zoo

PROG = "python -m dmm.zoo"


def _common(parser: argparse.ArgumentParser, data: bool) -> None:
    parser.add_argument("--root", type=Path, default=Path("."),
                        help="folder holding experiments/ (the repository root); other paths are relative to it")
    if data:
        cfg = get_cfg_defaults()
        parser.add_argument("--data-root", type=Path, default=Path(cfg.DATA.ROOT),
                            help="YouTube-VOS root, for the proposal folders' splits (DATA.ROOT)")
        parser.add_argument("--split-dir", type=Path, default=Path(cfg.DATA.SPLIT_DIR),
                            help="folder of the train3k / val200 / test271 meta files (DATA.SPLIT_DIR)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(DEBUG_FLAG, action="store_true", help=DEBUG_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(PROG, __doc__)
    parser.epilog = "python -m dmm.zoo COMMAND --help shows a command's options"
    commands = parser.add_subparsers(dest="command", required=True, metavar="{list,fetch,check}",
                                     help="what to do (python -m dmm.zoo COMMAND --help for its options)")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, prog=f"{PROG} {name}", formatter_class=HelpFormatter, help=summary,
                                   description=description)

    listing = command("list", "every released file, where it goes and whether it is here and checked",
                      "Every released file of MODEL_ZOO.md: its name, source address (the 2019 README's), size "
                      "when known, destination, state here.")
    _common(listing, data=False)

    get = command("fetch", "download, unpack, follow up and check released files",
                  "Download (resuming a partial download), unpack into MODEL_ZOO.md's layout, run the README's "
                  "follow-up and check. Nothing present and checked is overwritten.")
    get.add_argument("names", nargs="*", metavar="NAME", help="files to fetch (python -m dmm.zoo list names them)")
    get.add_argument("--for", dest="purpose", choices=sorted(PURPOSES), default=None,
                     help="every file a README workflow needs: "
                          + "; ".join(f"{k}: {', '.join(v)}" for k, v in PURPOSES.items()))
    get.add_argument("--from", dest="origin", default=None, metavar="DIR_OR_URL",
                     help="take the same file names from this folder or address instead of the 2019 addresses")
    _common(get, data=True)

    verify = command("check", "verify the files on disk by their content",
                     "Verify released files on disk by their content, one line each; record their SHA-256 in "
                     "experiments/zoo.lock.json after the first successful check and report a file that changed "
                     "since.")
    verify.add_argument("names", nargs="*", metavar="NAME", help="files to check (default: every one present)")
    verify.add_argument("--relock", action="store_true",
                        help="record the current SHA-256 of files that pass, replacing the lock's")
    _common(verify, data=True)
    return parser


def _places(args: argparse.Namespace) -> Places:
    root = args.root
    return Places(root, root / args.data_root, root / args.split_dir, progress=not args.no_progress)


def list_files(zoo: Zoo, root: Path) -> list[str]:
    """The ``list`` lines: per product its name, state here and what it is, then its source
    address(es) or page, size and destination."""
    lock = Lock(root)
    lines = []
    for release, product in zoo.products():
        target = root / product.path
        if not (target.exists() or target.is_symlink()):
            state = "absent"
        elif lock.recorded(product, target):
            state = "here, checked"
        else:
            state = "here, not checked"
        source = " | ".join(release.addresses) or f"by hand from {release.page}"
        known = release.size or lock.archives.get(release.file, {}).get("size")
        size = f"{known} bytes" if known else "size unknown"
        file = f"{release.file}, " if release.file else ""
        lines += [f"{product.name:<30} [{state}] {product.what}",
                  f"    from {source} ({file}{size})",
                  f"    to   {product.path}"]
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    zoo = Zoo()
    if args.command == "list":
        print("\n".join(list_files(zoo, args.root)))
        return 0
    if args.command == "check":
        check(zoo, args.names, _places(args), relock=args.relock)
        return 0
    names = list(args.names) + (zoo.purpose(args.purpose) if args.purpose else [])
    if not names:
        raise ConfigError("name the files to fetch (python -m dmm.zoo list) or a workflow with --for "
                          f"({', '.join(PURPOSES)})")
    fetch(zoo, names, _places(args), args.origin)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
