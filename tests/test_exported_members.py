"""The public surface: ``__all__`` is explicit and holds exactly the public names, both ways.

As httpx's ``tests/test_exported_members.py`` does it: every name in ``__all__`` exists and is
bulkstop's own, and every public name the package (or a module) exposes is in ``__all__``.
Submodules are attributes of their package once imported; they are not names of its
``__all__``.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from types import ModuleType

import pytest

import bulkstop


def _public(module: ModuleType) -> set[str]:
    """The public names ``module`` holds, other than its submodules."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not (isinstance(value, ModuleType) and value.__name__ == f"{module.__name__}.{name}")
    }


def _modules() -> list[str]:
    """Every module of the package, the simulator's included."""
    names = ["bulkstop"]
    for info in pkgutil.walk_packages(bulkstop.__path__, "bulkstop."):
        if info.name != "bulkstop.__main__":  # running it runs the command line
            names.append(info.name)
    return sorted(names)


def test_all_is_sorted_and_unique() -> None:
    assert bulkstop.__all__ == sorted(set(bulkstop.__all__))


def test_every_name_in_all_exists_and_is_bulkstops_own() -> None:
    for name in bulkstop.__all__:
        member = getattr(bulkstop, name)
        module = getattr(member, "__module__", "bulkstop")
        assert module.startswith("bulkstop"), (name, module)


def test_every_public_name_of_the_package_is_in_all() -> None:
    for name in bulkstop.__all__:  # load every lazy name first: each then is a global too
        getattr(bulkstop, name)
    assert _public(bulkstop) == set(bulkstop.__all__) - {"__version__"}


def test_dir_lists_every_lazy_name_before_it_is_loaded() -> None:
    assert set(bulkstop.__all__) <= set(dir(bulkstop))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = bulkstop.no_such_name  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", _modules())
def test_a_modules_all_names_what_it_defines(name: str) -> None:
    """Each module's ``__all__`` exists, and lists every public class and function defined
    in that module (what it imports from elsewhere is not its surface)."""
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    for member in exported:
        assert hasattr(module, member), (name, member)
    defined = {
        member
        for member in _public(module)
        if getattr(getattr(module, member), "__module__", None) == name
        and callable(getattr(module, member))
    }
    assert defined <= set(exported), (name, sorted(defined - set(exported)))


def test_library_runs_under_asyncio_run() -> None:
    class Client:
        async def stop(self, target: bulkstop.Target) -> bulkstop.Reply:
            return bulkstop.Reply(kind=bulkstop.ReplyKind.STOPPED, http_status=200)

        async def refresh_credentials(self, generation: int) -> bool:
            return False

    async def main() -> list[bulkstop.Outcome]:
        stopper = bulkstop.Stopper(Client(), pacer=bulkstop.Pacer(rate=1000))
        async with stopper.run([("f9d6c8466d614a9788e9a0acf6c15f46", 20)]) as results:
            return [result.outcome async for result in results]

    assert asyncio.run(main()) == [bulkstop.Outcome.STOPPED]
