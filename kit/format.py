"""Numbers for people, in one place: money, percentages, points and p-values — in sentences (``pct``, ``pts``,
``p_words``, ``usd_month``, ``per_error``) and in table cells (``PCT``, ``USD``, ``P_VALUE`` …: no NaN, no
3.469447e-18, "—" for nothing) — and tables with every cell and header escaped, so a name or an answer holding
HTML shows as text and never runs.

>>> import pandas as pd
>>> html = show(pd.DataFrame({"option": ["<b>x</b>"], "share": [0.5]}), {"share": PCT}).to_html()
>>> "&lt;b&gt;x&lt;/b&gt;" in html and "50.0%" in html and "<b>x" not in html
True
>>> pct(0.712), pts(0.0123), p_words(0.0004), usd_month(1234.5)
('71.2%', '+1.2 points', 'p < 0.001', '$1,234/month')
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from pandas.io.formats.style import Styler

Format = Callable[[Any], str]
MISSING = "—"


def finite(x: Any) -> float | None:
    try:
        value = float(x)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# -- in sentences ------------------------------------------------------------------------------------------
def pct(x: Any) -> str:
    """A proportion as a percentage: 0.712 -> '71.2%' ('n/a' for nothing)."""
    v = finite(x)
    return "n/a" if v is None else f"{100 * v:.1f}%"


def pts(x: Any, *, sign: bool = True) -> str:
    """A difference of proportions in percentage points: 0.0123 -> '+1.2 points'."""
    v = finite(x)
    return "n/a" if v is None else f"{100 * v:{'+' if sign else ''}.1f} points"


def p_words(p: Any) -> str:
    """A p-value as a reader sees it: 'p = 0.031', 'p < 0.001'."""
    v = finite(p)
    if v is None:
        return "p n/a"
    return "p < 0.001" if v < 0.001 else f"p = {v:.3f}"


def usd_month(x: Any) -> str:
    """USD a month, whole dollars from $10 up: '$1,234/month', '$4.50/month'."""
    v = finite(x)
    if v is None:
        return "cost unknown"
    return f"${v:,.0f}/month" if abs(v) >= 10 else f"${v:,.2f}/month"


def per_error(extra_cost: float, gain: float, volume: float) -> str:
    """USD per avoided error at which a dearer, better option pays off, in plain decimals (two significant
    digits below a cent, never e-notation).

    >>> per_error(1.57, 0.47, 100_000), per_error(268, 0.52, 100_000), per_error(269, 0.43, 1_000)
    ('$0.000033', '$0.0052', '$0.63')
    """
    value = extra_cost / (gain * volume)
    if value >= 0.01:
        return f"${value:,.2f}"
    if value <= 0:
        return "$0"
    return f"${value:.{1 - math.floor(math.log10(value))}f}"


# -- in table cells ------------------------------------------------------------------------------------------
def PCT(x: Any) -> str:  # noqa: N802 - a formatter used like a constant
    v = finite(x)
    return MISSING if v is None else f"{100 * v:.1f}%"


def POINTS(x: Any) -> str:  # noqa: N802
    v = finite(x)
    return MISSING if v is None else f"{100 * v:+.1f} pts"


def USD(x: Any) -> str:  # noqa: N802
    v = finite(x)
    if v is None:
        return MISSING
    return f"${v:,.0f}" if abs(v) >= 100 else f"${v:,.2f}" if abs(v) >= 0.01 else f"${v:.2g}"


def SECONDS(x: Any) -> str:  # noqa: N802
    v = finite(x)
    return MISSING if v is None else f"{v:.2f} s" if v < 100 else f"{v:,.0f} s"


def NUMBER(x: Any) -> str:  # noqa: N802
    v = finite(x)
    if v is None:
        return MISSING
    return f"{v:,.0f}" if abs(v) >= 100 or float(v).is_integer() else f"{v:.3g}"


def P_VALUE(x: Any) -> str:  # noqa: N802
    v = finite(x)
    return MISSING if v is None else "< 0.001" if v < 0.001 else f"{v:.3f}"


def ITEMS(x: Any) -> str:  # noqa: N802
    """A number of items; an unreachable one (infinite) is said in words."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return MISSING
    if math.isinf(v):
        return "unreachable"
    return MISSING if math.isnan(v) else f"{v:,.0f}"


def TEXT(x: Any) -> str:  # noqa: N802
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    return str(x)


def interval(frame: pd.DataFrame, low: str, high: str, fmt: Format = PCT) -> pd.Series:
    """Two columns as one "low – high" text column."""
    import pandas as pd

    return pd.Series([f"{fmt(a)} – {fmt(b)}" if finite(a) is not None else MISSING
                      for a, b in zip(frame[low], frame[high])], index=frame.index)


def show(frame: pd.DataFrame, formats: Mapping[str, Format] | None = None, *,
         columns: Mapping[str, str] | None = None) -> Styler:
    """A table ready for the report: ``formats`` per column (others: numbers and text), ``columns`` renames
    (old -> new) and picks the columns shown, in that order. Cells and headers are escaped."""
    import pandas as pd

    formats = dict(formats or {})
    if columns:
        frame = frame[[c for c in columns if c in frame.columns]].rename(columns=dict(columns))
        formats = {columns.get(k, k): v for k, v in formats.items()}
    shown = pd.DataFrame(index=frame.index)
    for col in frame.columns:
        fmt = formats.get(col)
        if fmt is None:
            fmt = NUMBER if pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col]) \
                else TEXT
        shown[col] = [html.escape(fmt(v)) for v in frame[col]]
    shown.columns = [html.escape(str(c)) for c in shown.columns]
    return (shown.style.hide(axis="index")
            .set_table_styles([{"selector": "th, td", "props": [("text-align", "left"), ("vertical-align", "top")]}]))


def esc(text: Any) -> str:
    """Text made safe for Markdown and HTML: ``<``, ``>``, ``&`` and quotes escaped, Markdown stars neutral, and
    dollar signs too (two of them in one line, "$267/month … $0.0051", would open a LaTeX math span, where
    entities show as typed).

    >>> esc("<script>alert(1)</script>")
    '&lt;script&gt;alert(1)&lt;/script&gt;'
    >>> esc("saves $267 (p < 0.001) for $0.005")
    'saves &#36;267 (p &lt; 0.001) for &#36;0.005'
    """
    return html.escape(str(text)).replace("*", "&#42;").replace("_", "&#95;").replace("$", "&#36;")


def esc_statement(text: Any) -> str:
    """:func:`esc` for the kit's own plain-words statements, keeping their ``**bold**`` conclusions bold.

    >>> esc_statement("so the result is **superior** for <b>")
    'so the result is **superior** for &lt;b&gt;'
    """
    return esc(text).replace("&#42;&#42;", "**")
