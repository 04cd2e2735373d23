"""Build hook: ship mm_ros's own msg/ and action/ inside the wheel; metadata is in pyproject."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithInterfaces(build_py):
    """Ship msg/ + action/ (definitions) and launch/ + config/ (share) inside the wheel."""

    def run(self) -> None:
        """Build as usual, then add the interface definitions."""
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "mm_ros" / "interfaces" / "definitions" / "mm_ros"
        for kind in ("msg", "action"):
            for source in sorted((root / kind).glob(f"*.{kind}")):
                out = target / kind / source.name
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(source.read_bytes())
        share = Path(self.build_lib) / "mm_ros" / "share"  # `$(find-pkg-share mm_ros)` for pip
        for folder in ("launch", "config"):
            for source in sorted((root / folder).rglob("*.yaml")):  # launch/parts/ too
                out = share / folder / source.relative_to(root / folder)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(source.read_bytes())


setup(cmdclass={"build_py": BuildPyWithInterfaces})
