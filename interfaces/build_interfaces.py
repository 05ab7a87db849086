#!/usr/bin/env python3
"""Build the ROS 2 interface packages in this folder (tf2_msgs, vision_msgs) into a prefix.

    python interfaces/build_interfaces.py --prefix .venv [--build-dir build/interfaces] [--jobs 2]
        [--force] [PACKAGE ...]

No PyPI wheel provides ``tf2_msgs`` or ``vision_msgs``, but the ROS 2 Jazzy interface
generators and ament's CMake tools do (requirements/interfaces.txt). With them, each package
here is configured, compiled and installed like colcon would, with plain CMake, into
``--prefix`` (the virtual environment, which is also ``AMENT_PREFIX_PATH``): its Python module
lands in the prefix's site-packages and its type-support libraries in ``PREFIX/lib``, where
rclpy finds them.

A package that is already importable from somewhere else (a sourced ROS distro) is skipped:
the distro's package is used. ``--force`` rebuilds packages installed in the prefix.

Needs ``cmake`` and a C/C++ compiler (Debian: ``cmake g++``). Prints the time per package;
a failure prints the end of the CMake log and exits non-zero.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGES = ("tf2_msgs", "vision_msgs")
"""Build order (vision_msgs does not depend on tf2_msgs, but a fixed order keeps logs comparable)."""

PROBES = {"tf2_msgs": "TFMessage", "vision_msgs": "Detection3DArray"}
"""A message of each package that the check after installing imports and instantiates."""

WHEEL_FIX = HERE / "cmake" / "wheel_python_include.cmake"


def provided_elsewhere(package: str, prefix: Path) -> str | None:
    """Where ``package`` is importable from outside ``prefix`` (a ROS distro), else None."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin).resolve()
    return None if prefix.resolve() in origin.parents else str(origin.parent)


def installed_in(package: str, prefix: Path) -> bool:
    """Whether ``package``'s interfaces are installed in ``prefix`` (its ament index marker)."""
    return (prefix / "share" / "ament_index" / "resource_index" / "packages" / package).is_file()


def run_logged(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> None:
    """Run ``command``, appending its output to ``log``; on failure print the log's end and exit."""
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        sys.stderr.write("\n".join(tail) + "\n")
        sys.exit(f"interfaces: `{' '.join(command[:2])} ...` failed (exit {result.returncode}); full log: {log}")


def build(package: str, prefix: Path, build_root: Path, jobs: int) -> float:
    """Configure, compile and install ``package`` into ``prefix``; returns the seconds it took."""
    source = HERE / package
    build_dir = build_root / package
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    log = build_dir / "build.log"
    env = dict(os.environ)
    prefix_text = str(prefix)
    # The generators and ament's CMake code are found through these, as under colcon.
    env["AMENT_PREFIX_PATH"] = prefix_text
    env["CMAKE_PREFIX_PATH"] = prefix_text
    env["PATH"] = f"{prefix / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    start = time.perf_counter()
    run_logged(
        [
            "cmake",
            str(source),
            f"-DCMAKE_INSTALL_PREFIX={prefix_text}",
            f"-DPython3_EXECUTABLE={sys.executable}",
            "-DCMAKE_BUILD_TYPE=Release",
            "-DBUILD_TESTING=OFF",
            f"-DCMAKE_PROJECT_INCLUDE={WHEEL_FIX}",
        ],
        log,
        env,
        build_dir,
    )
    run_logged(["cmake", "--build", ".", "--parallel", str(jobs)], log, env, build_dir)
    run_logged(["cmake", "--install", "."], log, env, build_dir)
    return time.perf_counter() - start


def check_import(package: str, prefix: Path) -> None:
    """Import and instantiate a message of ``package`` in a fresh interpreter (as rclpy will)."""
    message = PROBES[package]
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    code = f"from {package}.msg import {message}; {message}()"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"interfaces: {package} was installed but `{code}` fails:\n{result.stderr.strip()}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("packages", nargs="*", metavar="PACKAGE", help=f"packages to build (default: {' '.join(PACKAGES)})")
    parser.add_argument("--prefix", type=Path, required=True, help="install prefix (the virtual environment)")
    parser.add_argument("--build-dir", type=Path, default=Path("build/interfaces"), help="CMake build folders and logs")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel compile jobs")
    parser.add_argument("--force", action="store_true", help="rebuild packages already installed in the prefix")
    args = parser.parse_args(argv)
    prefix = args.prefix.resolve()
    unknown = sorted(set(args.packages) - set(PACKAGES))
    if unknown:
        parser.error(f"unknown package(s) {unknown}; choose from {list(PACKAGES)}")
    for tool in ("cmake", "cc", "c++"):
        if shutil.which(tool) is None:
            sys.exit(f"interfaces: `{tool}` is not on PATH; install cmake and a C/C++ compiler (Debian: cmake g++)")
    for package in args.packages or PACKAGES:
        elsewhere = provided_elsewhere(package, prefix)
        if elsewhere is not None:
            print(f"interfaces: {package} is provided by {elsewhere}; not built")
            continue
        if installed_in(package, prefix) and not args.force:
            check_import(package, prefix)
            print(f"interfaces: {package} already installed in {prefix}")
            continue
        seconds = build(package, prefix, args.build_dir.resolve(), max(1, args.jobs))
        check_import(package, prefix)
        print(f"interfaces: built and installed {package} into {prefix} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
