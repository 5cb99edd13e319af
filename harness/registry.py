"""Look up backends (and datasets) registered through the plugin hooks."""

from __future__ import annotations

from .backend import Backend, BackendError, BackendSpec
from .plugins import load_plugins, pm


class DuplicateBackendError(BackendError):
    pass


class UnknownBackendError(BackendError):
    pass


def backend_classes() -> dict[str, type[Backend]]:
    """Every registered backend by name and alias (aliases map to the same class)."""
    load_plugins()
    found: dict[str, type[Backend]] = {}

    def register(cls: type[Backend], aliases: tuple[str, ...] = ()) -> None:
        for key in (cls.name, *aliases):
            if key in found and found[key] is not cls:
                raise DuplicateBackendError(
                    f"Backend id {key!r} is registered twice: by {found[key].__module__}.{found[key].__name__} "
                    f"and by {cls.__module__}.{cls.__name__}"
                )
            found[key] = cls

    pm.hook.register_backends(register=register)
    return found


def get_backend_class(name: str) -> type[Backend]:
    classes = backend_classes()
    if name not in classes:
        known = ", ".join(sorted({c.name for c in classes.values()}))
        raise UnknownBackendError(f"Unknown backend {name!r}; known backends: {known}")
    return classes[name]


def create_backend(spec: str | BackendSpec) -> Backend:
    """Instantiate a backend from ``NAME[:key=value,...]`` (options validated, nothing loaded yet)."""
    if isinstance(spec, str):
        spec = BackendSpec.parse(spec)
    return get_backend_class(spec.name)(**spec.options)
