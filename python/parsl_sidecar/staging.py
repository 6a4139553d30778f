"""``SidecarStaging``: a Parsl staging provider for ``s3://``, ``gs://`` and ``pw://`` Files.

Put it in an executor's ``storage_access`` next to ``NoOpFileStaging`` (the list replaces
Parsl's defaults)::

    HighThroughputExecutor(..., storage_access=[NoOpFileStaging(), SidecarStaging()])

Then ``File("s3://bucket/in.csv")`` in ``inputs=`` is copied by the sidecar to the executor's
pool before the app runs (the app sees its ``filepath`` there), and ``File("gs://bucket/out")``
in ``outputs=`` is written by the app under a pool path and copied to the bucket when the app
has succeeded; the output's DataFuture completes after that copy. The transfers run in the
sidecar, not in the task.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import posixpath
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from parsl.app.futures import DataFuture
from parsl.data_provider.files import File
from parsl.data_provider.staging import Staging
from parsl.utils import RepresentationMixin

from ._transfers import Transfer, default_client, resolve_host, start_transfer
from .client import Client

__all__ = ["SidecarStaging"]

log = logging.getLogger("parsl_sidecar.staging")

SCHEMES = ("s3", "gs", "pw")


def _make_dirs_first(func: Callable[..., Any], directory: str) -> Callable[..., Any]:
    """Run ``func`` after creating ``directory`` (in the task, on the worker)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        os.makedirs(directory, exist_ok=True)
        return func(*args, **kwargs)

    return wrapper


def _relay(src: Future[Any], dst: Future[Any]) -> None:
    def done(f: Future[Any]) -> None:
        exc = f.exception()
        if exc is not None:
            dst.set_exception(exc)
        else:
            dst.set_result(f.result())

    src.add_done_callback(done)


class SidecarStaging(Staging, RepresentationMixin):
    """Stage ``s3://``, ``gs://`` and ``pw://`` Files through the sidecar.

    Parameters
    ----------
    host : str, optional
        Where the executor's workers read and write files: ``"local"``, an ssh target, or an
        executor label of executors.json. Default: the executor's label if executors.json has
        it, else ``"local"``.
    directory : str, optional
        Absolute directory on that host for staged files (one subdirectory per URL). Default:
        the executor's ``working_dir`` when absolute, else ``./sidecar-staging`` for local
        workers, ``/tmp/parsl-sidecar-staging`` on a pool. Use a shared filesystem for
        multi-node pools.
    client : Client, optional
        The sidecar client; default: the process's staging client.
    """

    def __init__(
        self, host: str | None = None, directory: str | None = None, client: Client | None = None
    ) -> None:
        self.host = host
        self.directory = directory
        self.client = client

    def can_stage_in(self, file: File) -> bool:
        return file.scheme in SCHEMES

    def can_stage_out(self, file: File) -> bool:
        return file.scheme in SCHEMES

    def _client(self) -> Client:
        return self.client or default_client()

    def _where(self, dm: Any, executor: str) -> tuple[str, str]:
        host = self.host if self.host is not None else executor
        target = resolve_host(host, self._client())
        if self.host is None and target == executor:
            target = "local"  # a label that executors.json does not know: workers run here
        directory = self.directory
        if directory is None:
            wd = getattr(dm.dfk.executors[executor], "working_dir", None)
            if isinstance(wd, str) and wd.startswith("/"):
                directory = wd
            elif target == "local":
                directory = os.path.join(os.getcwd(), "sidecar-staging")
            else:
                directory = "/tmp/parsl-sidecar-staging"
        return target, directory

    @staticmethod
    def _local_path(directory: str, file: File) -> str:
        digest = hashlib.sha256(file.url.encode()).hexdigest()[:16]
        return posixpath.join(directory, digest, file.filename or "data")

    def stage_in(
        self, dm: Any, executor: str, file: File, parent_fut: Future[Any] | None
    ) -> DataFuture:
        target, directory = self._where(dm, executor)
        local = self._local_path(directory, file)
        file.local_path = local
        out: Future[Transfer] = Future()
        client = self._client()

        def start(_: Future[Any] | None = None) -> None:
            failed = parent_fut.exception() if parent_fut is not None else None
            if failed is not None:
                out.set_exception(failed)
                return
            t = start_transfer(
                client,
                src=file.url,
                dst=local,
                kind="auto",
                host=target,
                item=file.filename,
                direction="in",
            )
            _relay(t, out)

        if parent_fut is None:
            start()
        else:
            parent_fut.add_done_callback(start)
        log.debug("staging in %s to %s:%s", file.url, target, file.local_path)
        return DataFuture(out, file, tid=-1)

    def stage_out(self, dm: Any, executor: str, file: File, app_fu: Future[Any]) -> Future[Any]:
        target, directory = self._where(dm, executor)
        local = self._local_path(directory, file)
        file.local_path = local
        out: Future[Any] = Future()
        client = self._client()

        def after(f: Future[Any]) -> None:
            exc = f.exception()
            if exc is not None:
                out.set_exception(exc)
                return
            t = start_transfer(
                client,
                src=local,
                dst=file.url,
                kind="auto",
                host=target,
                item=file.filename,
                direction="out",
            )
            _relay(t, out)

        app_fu.add_done_callback(after)
        return out

    def replace_task_stage_out(
        self, dm: Any, executor: str, file: File, func: Callable[..., Any]
    ) -> Callable[..., Any]:
        # the app writes file.local_path; its directory must exist on the worker first
        local = file.local_path or self._local_path("/tmp/parsl-sidecar-staging", file)
        return _make_dirs_first(func, posixpath.dirname(local))
