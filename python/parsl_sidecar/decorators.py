"""``stage_app`` and ``log_app``: data staging and logging around Parsl apps, done by the sidecar.

Stacked as before::

    @parsl_sidecar.log_app
    @parsl_sidecar.stage_app("cpu_executor")
    @bash_app
    def simulate(cmd, inputs=[], outputs=[], inputs_dict={}, outputs_dict={},
                 stdout="std.out", stderr="std.err"):
        return cmd

Calling ``simulate(...)`` checks both dicts at once (a relative path, an unknown scheme or a
missing field raises :class:`StagingSpecError` before anything is submitted), starts every
stage-in in the sidecar and submits the app at once with a Future in place of ``inputs_dict``
(Parsl waits for it as for any dependency, and the app sees the dict unchanged). Stage-out
starts when the app succeeds. The returned :class:`concurrent.futures.Future` completes after
stage-out, with the app's result, and can be passed to other apps as a dependency; a failed
transfer fails it with a :class:`StagingError` naming the item, the URLs and the cause.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from ._transfers import (
    StagingSpecError,
    Transfer,
    check_io_dict,
    default_client,
    gather,
    resolve_host,
    start_transfer,
)
from .client import Client
from .errors import SidecarError

__all__ = ["StagingSpecError", "log_app", "stage_app"]

log = logging.getLogger("parsl_sidecar.apps")

Observer = Callable[[Transfer], None]


def _target_function(app: Any) -> Callable[..., Any]:
    """The user's function under a Parsl app or our wrappers (for its signature)."""
    seen = 0
    f = app
    while seen < 10:
        inner = getattr(f, "_psc_function", None) or getattr(f, "func", None)
        if inner is None or inner is f:
            return f  # type: ignore[no-any-return]
        f = inner
        seen += 1
    return f  # type: ignore[no-any-return]


def _defaults(fn: Callable[..., Any]) -> tuple[inspect.Signature | None, dict[str, Any]]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None, {}
    return sig, {n: p.default for n, p in sig.parameters.items() if p.default is not p.empty}


def _is_parsl_app(app: Any) -> bool:
    try:
        from parsl.app.app import AppBase
    except ImportError:  # pragma: no cover - parsl is needed to have apps at all
        return False
    return isinstance(app, AppBase)


class _DependencyFailed(Exception):
    """Stage-in did not start: one of the app's dependencies failed (the app reports it)."""


def _futures_in(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Future[Any]]:
    """The Futures Parsl would wait for: in args, kwargs and ``inputs`` (not nested deeper)."""
    found = [a for a in args if isinstance(a, Future)]
    found += [v for v in kwargs.values() if isinstance(v, Future)]
    inputs = kwargs.get("inputs")
    if isinstance(inputs, (list, tuple)):
        found += [v for v in inputs if isinstance(v, Future)]
    return found


def _chain(src: Future[Any], dst: Future[Any], value: Callable[[Any], Any] = lambda v: v) -> None:
    def done(f: Future[Any]) -> None:
        exc = f.exception()
        if exc is not None:
            dst.set_exception(exc)
        else:
            dst.set_result(value(f.result()))

    src.add_done_callback(done)


def _wrap(app: Any, call: Callable[..., Any], sig: inspect.Signature | None) -> Any:
    wrapper: Any = functools.wraps(app, updated=())(call)
    if sig is not None:
        wrapper.__signature__ = sig
    wrapper._psc_function = _target_function(app)
    return wrapper


def stage_app(host: str, *, client: Client | None = None) -> Callable[[Any], Any]:
    """Stage ``inputs_dict`` in before and ``outputs_dict`` out after each call of an app.

    Parameters
    ----------
    host : str
        Where ``worker_path`` lives: an executor label of the workflow's executors.json
        (``$PARSL_SIDECAR_EXECUTORS`` or ``./executors.json``), an ssh target
        (``user@host[:port]`` or an ssh config alias), or ``"local"`` (this machine).
    client : Client, optional
        The sidecar client; default: one connected on first use
        (``$PARSL_SIDECAR_CONNECTION_FILE``, as set by ``parsl-sidecar run``).

    Returns
    -------
    callable
        A decorator for a ``@bash_app``/``@python_app``. The decorated callable keeps the app's
        signature and returns a :class:`concurrent.futures.Future`.

    Notes
    -----
    ``inputs_dict``/``outputs_dict`` map a name to ``{"type": "file" | "directory",
    "global_path": "pw://{cwd}/..." | "file:///..." | "s3://bucket/key" | "gs://bucket/key",
    "worker_path": "/absolute/path"}``. ``{cwd}`` is the working directory at the call. A
    directory's contents are copied into ``worker_path`` (stage-in) or ``global_path``
    (stage-out).
    """
    if not isinstance(host, str) or not host:
        raise StagingSpecError(
            f"stage_app(host) needs an executor label, ssh target or 'local', got {host!r}"
        )

    def decorate(app: Any) -> Any:
        sig, defaults = _defaults(_target_function(app))
        parsl_app = _is_parsl_app(app)

        def run(
            args: tuple[Any, ...], kwargs: dict[str, Any], observer: Observer | None
        ) -> Future[Any]:
            in_value = kwargs.get("inputs_dict", defaults.get("inputs_dict"))
            out_value = kwargs.get("outputs_dict", defaults.get("outputs_dict"))
            inputs = check_io_dict(in_value, "inputs_dict")
            outputs = check_io_dict(out_value, "outputs_dict")
            result: Future[Any] = Future()
            if not inputs and not outputs:
                ret = app(*args, **kwargs)
                if isinstance(ret, Future):
                    _chain(ret, result)
                else:
                    result.set_result(ret)
                return result
            cl = client or default_client()
            target = resolve_host(host, cl)
            cwd = os.getcwd()

            def begin() -> Future[Any]:
                return gather(
                    [
                        start_transfer(
                            cl,
                            src=s.global_path,
                            dst=s.worker_path,
                            kind=s.type,
                            host=target,
                            item=s.name,
                            direction="in",
                            cwd=cwd,
                            on_done=observer,
                        )
                        for s in inputs
                    ],
                    in_value,
                )

            # inputs may be produced by the app's own dependencies: stage in once they are done
            deps = _futures_in(args, kwargs)
            stage_in: Future[Any]
            if not deps:
                stage_in = begin()
            else:
                stage_in = Future()

                def deps_done(f: Future[Any]) -> None:
                    if f.exception() is not None:
                        stage_in.set_exception(_DependencyFailed("a dependency of the app failed"))
                    else:
                        _chain(begin(), stage_in)

                gather(deps, None).add_done_callback(deps_done)
            call_kwargs = dict(kwargs)
            if inputs:
                if parsl_app:
                    # a Future among the arguments is a dependency; Parsl passes its result
                    call_kwargs["inputs_dict"] = stage_in
                else:
                    stage_in.result()
            try:
                ret = app(*args, **call_kwargs)
            except BaseException:
                raise
            app_fut: Future[Any]
            if isinstance(ret, Future):
                app_fut = ret
            else:
                app_fut = Future()
                app_fut.set_result(ret)

            def after_app(f: Future[Any]) -> None:
                exc = f.exception()
                if exc is not None:
                    # a failed stage-in reaches the app as a DependencyError: report the cause
                    staged = stage_in.exception() if stage_in.done() else None
                    if isinstance(staged, _DependencyFailed):
                        staged = None
                    result.set_exception(staged if staged is not None else exc)
                    return
                value = f.result()
                outs = [
                    start_transfer(
                        cl,
                        src=s.worker_path,
                        dst=s.global_path,
                        kind=s.type,
                        host=target,
                        item=s.name,
                        direction="out",
                        cwd=cwd,
                        on_done=observer,
                    )
                    for s in outputs
                ]
                _chain(gather(outs, value), result)

            app_fut.add_done_callback(after_app)
            return result

        def call(*args: Any, **kwargs: Any) -> Future[Any]:
            return run(args, kwargs, None)

        wrapper = _wrap(app, call, sig)
        wrapper._psc_run = run
        return wrapper

    return decorate


# --- log_app ------------------------------------------------------------------------------------


def _describe(x: Any) -> Any:
    """A loggable form of an argument; never touches an AppFuture's attributes."""
    try:
        from parsl.app.futures import DataFuture
        from parsl.data_provider.files import File
    except ImportError:  # pragma: no cover
        File = DataFuture = ()  # type: ignore[assignment,misc]
    if isinstance(x, File):
        return x.url
    if isinstance(x, DataFuture):
        return f"<DataFuture {x.file_obj.url}>"
    if isinstance(x, Future):
        return f"<{type(x).__name__}>"
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x if not isinstance(x, str) or len(x) <= 2000 else x[:2000] + "..."
    if isinstance(x, (list, tuple)):
        return [_describe(v) for v in x]
    if isinstance(x, Mapping):
        return {str(k): _describe(v) for k, v in x.items()}
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    text = repr(x)
    return text if len(text) <= 500 else text[:500] + "..."


_no_sidecar_until = 0.0


def _to_sidecar(level: str, message: str, fields: dict[str, Any]) -> None:
    global _no_sidecar_until
    if time.monotonic() < _no_sidecar_until:
        return
    try:
        cl = default_client()
    except SidecarError:
        _no_sidecar_until = time.monotonic() + 30  # no sidecar: the workflow's log has it
        return
    with contextlib.suppress(SidecarError):
        cl.call_async("staging.log", {"level": level, "message": message, "fields": fields})


def log_app(app: Any) -> Any:
    """Log each call of an app: its name, args, inputs and outputs (paths), ``inputs_dict``,
    ``outputs_dict``, stdout and stderr, then each transfer (size, time) and the outcome.

    Records go to the ``parsl_sidecar.apps`` logger (``logging``) and to the sidecar's log
    (``staging.log``) when a sidecar is reachable.

    Parameters
    ----------
    app : callable
        A ``stage_app``-wrapped app or a Parsl app.

    Returns
    -------
    callable
        Same signature; returns what ``app`` returns (a Future).
    """
    sig, defaults = _defaults(_target_function(app))
    name = getattr(app, "__name__", type(app).__name__)
    run = getattr(app, "_psc_run", None)

    def observer(t: Transfer) -> None:
        fields = {
            "app": name,
            "item": t.item,
            "direction": t.direction,
            "src": t.src,
            "dst": t.dst,
            "bytes": t.bytes,
            "files": t.files,
            "skipped": t.skipped,
            "duration_ms": round(t.duration_ms, 1),
        }
        log.info(
            "%s: staged %s %s %s -> %s: %d bytes, %d files (%d skipped) in %.3f s",
            name,
            t.direction,
            t.item,
            t.src,
            t.dst,
            t.bytes,
            t.files,
            t.skipped,
            t.duration_ms / 1000,
        )
        _to_sidecar("info", f"{name}: staged {t.direction} {t.item}", fields)

    def call(*args: Any, **kwargs: Any) -> Any:
        merged = {**defaults, **kwargs}
        fields = {
            "app": name,
            "args": _describe(list(args)),
            "inputs": _describe(merged.get("inputs", [])),
            "outputs": _describe(merged.get("outputs", [])),
            "inputs_dict": _describe(merged.get("inputs_dict", {})),
            "outputs_dict": _describe(merged.get("outputs_dict", {})),
            "stdout": _describe(merged.get("stdout")),
            "stderr": _describe(merged.get("stderr")),
        }
        if log.isEnabledFor(logging.INFO):
            log.info("%s called: %s", name, fields)
        _to_sidecar("info", f"{name} called", fields)
        started = time.monotonic()
        fut = run(args, kwargs, observer) if run is not None else app(*args, **kwargs)

        def finished(f: Future[Any]) -> None:
            secs = time.monotonic() - started
            exc = f.exception()
            if exc is None:
                log.info("%s done in %.3f s", name, secs)
                _to_sidecar("info", f"{name} done", {"app": name, "seconds": round(secs, 3)})
            else:
                log.warning("%s failed after %.3f s: %s", name, secs, exc)
                _to_sidecar(
                    "warn",
                    f"{name} failed",
                    {"app": name, "seconds": round(secs, 3), "error": str(exc)},
                )

        if isinstance(fut, Future):
            fut.add_done_callback(finished)
        return fut

    wrapper = _wrap(app, call, sig)
    if run is not None:
        wrapper._psc_run = lambda a, k, o: call(*a, **k)
    return wrapper
