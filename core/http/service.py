""":class:`Service`: what a plugin's routes may use of the model being served.

It is handed to the ``register_routes``, ``extend_info`` and ``extend_openapi`` hooks. A plugin
reads the model and its analysed interface, validates request bodies the way ``POST /predict``
does, and mounts its prediction routes behind :attr:`Service.gate`; it touches nothing else of
core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from core.http.gate import Gate

if TYPE_CHECKING:
    from core.analysis import ModelInterface
    from core.config import Config


@attrs.frozen
class Probe:
    """A probe's answer: ``ok``, and why not."""

    ok: bool
    reason: str | None = None


@attrs.frozen
class Service:
    """The served model, as routes see it.

    :ivar conf: the settings (read them; do not change them).
    :ivar model: the model object the binarizer (or storage) produced.
    :ivar interface: what analysis found: ``interface.arguments`` (names, kinds, declared
        tensors), ``interface.rows`` (the rows argument) and ``interface.outputs`` (declared
        output tensors, when the model declares them).
    :ivar gate: the admission gate: ``gate.route(path, handler)`` mounts a prediction route,
        whose handler gets an :class:`core.http.Admission` and predicts with
        ``await admission.predict(data)``.
    """

    conf: Config
    model: Any
    interface: ModelInterface
    gate: Gate
    _validate: Callable[[Any], dict[str, Any]] = attrs.field(alias="validate")
    _live: Callable[[], Probe] = attrs.field(alias="live")
    _ready: Callable[[], Probe] = attrs.field(alias="ready")

    @property
    def name(self) -> str:
        return self.conf.name

    @property
    def version(self) -> str:
        return self.conf.version

    def validate(self, body: Any) -> dict[str, Any]:
        """Check a request body (a dict of predict arguments) the way ``POST /predict`` does;
        the validated values, or a 422 :class:`core.errors.ValidationError` naming each
        problem."""
        return self._validate(body)

    def live(self) -> Probe:
        """Liveness: false only when the process should be restarted (calls stuck past
        ``predict_timeout`` beyond ``max_stuck_predicts``)."""
        return self._live()

    def ready(self) -> Probe:
        """Readiness: false while the server drains after SIGTERM or is saturated."""
        return self._ready()
