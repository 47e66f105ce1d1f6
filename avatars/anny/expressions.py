"""Named facial expressions and `--blendshapes` text, as ARKit blendshape weights."""
from __future__ import annotations

import enum

import numpy as np

from dream3d.errors import UsageError

ARKIT_NAMES = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)
"""Apple ARKit's 52 face blendshape names (Anny's facial actions, in its order)."""


class Expression(enum.Enum):
    """A preset expression (`--expression`)."""

    NEUTRAL = "neutral"
    SMILE = "smile"
    SURPRISE = "surprise"
    ANGRY = "angry"
    SAD = "sad"
    WINK = "wink"

    @property
    def weights(self) -> dict[str, float]:
        """ARKit blendshape -> weight in [0, 1]."""
        return dict(_PRESETS[self])


_PRESETS: dict[Expression, dict[str, float]] = {
    Expression.NEUTRAL: {},
    Expression.SMILE: {"mouthSmileLeft": 0.9, "mouthSmileRight": 0.9, "cheekSquintLeft": 0.5,
                       "cheekSquintRight": 0.5, "eyeSquintLeft": 0.3, "eyeSquintRight": 0.3, "jawOpen": 0.1},
    Expression.SURPRISE: {"browInnerUp": 0.9, "browOuterUpLeft": 0.9, "browOuterUpRight": 0.9, "eyeWideLeft": 0.8,
                          "eyeWideRight": 0.8, "jawOpen": 0.55, "mouthFunnel": 0.3},
    Expression.ANGRY: {"browDownLeft": 1.0, "browDownRight": 1.0, "noseSneerLeft": 0.6, "noseSneerRight": 0.6,
                       "eyeSquintLeft": 0.5, "eyeSquintRight": 0.5, "mouthPressLeft": 0.5, "mouthPressRight": 0.5,
                       "mouthFrownLeft": 0.4, "mouthFrownRight": 0.4},
    Expression.SAD: {"browInnerUp": 0.8, "mouthFrownLeft": 0.9, "mouthFrownRight": 0.9, "mouthShrugLower": 0.4,
                     "eyeSquintLeft": 0.2, "eyeSquintRight": 0.2, "eyeLookDownLeft": 0.3, "eyeLookDownRight": 0.3},
    Expression.WINK: {"eyeBlinkLeft": 1.0, "cheekSquintLeft": 0.5, "mouthSmileLeft": 0.6, "mouthSmileRight": 0.25},
}


def parse_blendshapes(text: str) -> dict[str, float]:
    """'jawOpen=0.6,mouthSmileLeft=0.4' -> weights; a bad name or value is a UsageError (one line)."""
    weights: dict[str, float] = {}
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise UsageError(f"--blendshapes: {item!r} is not NAME=WEIGHT (e.g. jawOpen=0.6)")
        if name not in ARKIT_NAMES:
            close = [n for n in ARKIT_NAMES if n.lower() == name.lower() or n.lower().startswith(name.lower()[:5])]
            hint = f"; did you mean {', '.join(close[:4])}?" if close else "; names are ARKit's, e.g. jawOpen, mouthSmileLeft"
            raise UsageError(f"--blendshapes: unknown blendshape {name!r}{hint}")
        try:
            w = float(value)
        except ValueError:
            raise UsageError(f"--blendshapes: {name}={value!r} is not a number") from None
        if not 0.0 <= w <= 1.0:
            raise UsageError(f"--blendshapes: {name}={w} is outside 0..1")
        weights[name] = w
    if not weights:
        raise UsageError("--blendshapes is empty: give NAME=WEIGHT pairs, e.g. jawOpen=0.6,mouthSmileLeft=0.4")
    return weights


REEL = (Expression.NEUTRAL, Expression.SMILE, Expression.SURPRISE, Expression.ANGRY, Expression.SAD,
        Expression.WINK, Expression.NEUTRAL)
"""The `--animate` reel: each expression in turn, back to neutral."""


def reel_keys(seconds_per_expression: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Key times [K] and weights [K, 52] (ARKit order) of the expression reel."""
    times = np.arange(len(REEL), dtype=np.float32) * seconds_per_expression
    weights = np.zeros((len(REEL), len(ARKIT_NAMES)), np.float32)
    for k, expression in enumerate(REEL):
        for name, w in expression.weights.items():
            weights[k, ARKIT_NAMES.index(name)] = w
    return times, weights


def reel_weights_at(t: float, times: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[52] weights at time t, linearly interpolated between keys (what a glTF player shows)."""
    return np.array([np.interp(t, times, weights[:, m]) for m in range(weights.shape[1])], np.float32)
