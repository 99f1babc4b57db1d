"""Exact ``resource.Quantity`` (k8s.io/apimachinery/pkg/api/resource) for the CEL quantity library.

A :class:`Quantity` is ``unscaled * 10**exp`` held exactly with Python ints, in one of the two states a Go
Quantity can be in: the int64 fast path (``int64Amount``: the unscaled value fits an int64 and ``exp`` is
its Scale) or the arbitrary-precision ``inf.Dec`` state. Values compare exactly whatever the state, but
the state is observable: ``AsInt64`` (CEL ``isInteger``/``asInteger``) only succeeds on the int64 state
with a non-negative scale (``1000m``, ``1Ei`` and ``1.5Gi`` are not integers to Kubernetes), and
``AsApproximateFloat64`` multiplies the unscaled value by ``math.Pow10(exp)``, so both follow the state
``ParseQuantity``/``Add``/``Sub`` would leave a Go Quantity in.

Differences from Go: values are immutable (Go's shallow copies share state), and an exact operation that
would have to write out more than :data:`MAX_ALIGN_DIGITS` decimal digits (``1e2000000000`` plus ``1``)
raises :class:`QuantityTooLarge` instead of allocating gigabytes.
"""

from __future__ import annotations

import re
from decimal import Decimal

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT32 = 2**31 - 1

SPLIT_RE = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
ERR_FORMAT = f"quantities must match the regular expression '{SPLIT_RE}'"
ERR_NUMERIC = "unable to parse numeric part of quantity"
ERR_SUFFIX = "unable to parse quantity's suffix"

MAX_ALIGN_DIGITS = 100_000

_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_EXPONENT_RE = re.compile(r"[+-]?[0-9]{1,20}")
_DECIMAL_RE = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?")


class QuantityTooLarge(ArithmeticError):
    """An exact result would need more than :data:`MAX_ALIGN_DIGITS` digits."""


class Quantity:
    """An immutable quantity value ``unscaled * 10**exp``.

    ``dec`` is True in the ``inf.Dec`` state. ``boxed`` marks results of ``add``/``sub``, which the CEL
    library returns as ``*Quantity``; its ``Equal`` only accepts a non-pointer operand (see
    :func:`cel_equal`).
    """

    __slots__ = ("boxed", "dec", "exp", "unscaled")

    def __init__(self, unscaled: int, exp: int, dec: bool, boxed: bool = False) -> None:
        self.unscaled, self.exp, self.dec, self.boxed = unscaled, exp, dec, boxed

    def __repr__(self) -> str:
        state = "dec" if self.dec else "int64"
        return f"Quantity({self.unscaled}e{self.exp}, {state}{', boxed' if self.boxed else ''})"

    __hash__ = None  # type: ignore[assignment]

    # -- accessors (resource.Quantity methods) ------------------------------------------------------
    def sign(self) -> int:
        """``Sign``: -1, 0 or 1."""
        return (self.unscaled > 0) - (self.unscaled < 0)

    def as_int64(self) -> int | None:
        """``AsInt64``: the value if the int64 state holds it at scale >= 0 without overflow, else None."""
        if self.dec or self.exp < 0:
            return None
        return _positive_scale(self.unscaled, self.exp)

    def as_approximate_float(self) -> float:
        """``AsApproximateFloat64``: ``float64(unscaled) * math.Pow10(exp)`` (±Inf outside float64's range)."""
        try:
            base = float(self.unscaled)
        except OverflowError:  # big.Float.Float64 saturates to ±Inf
            base = float("inf") if self.unscaled > 0 else float("-inf")
        if self.exp == 0:
            return base
        return base * go_pow10(self.exp)

    def cmp(self, other: Quantity) -> int:
        """``Cmp``: exact three-way comparison of the values."""
        sa, sb = self.sign(), other.sign()
        if sa != sb:
            return 1 if sa > sb else -1
        if sa == 0:
            return 0
        # Settle what the decimal magnitudes already decide, so a wide exponent gap is never written out.
        a_lo, a_hi = _decimal_order_bounds(self)
        b_lo, b_hi = _decimal_order_bounds(other)
        if a_lo > b_hi:
            return sa
        if a_hi < b_lo:
            return -sa
        exp = min(self.exp, other.exp)
        x = _shift(self.unscaled, self.exp - exp)
        y = _shift(other.unscaled, other.exp - exp)
        return (x > y) - (x < y)

    def add(self, other: Quantity) -> Quantity:
        """``Add`` on a copy: the int64 fast path when both are int64 and nothing overflows, else inf.Dec."""
        if not self.dec and not other.dec:
            result = _int64_add(self.unscaled, self.exp, other.unscaled, other.exp)
            if result is not None:
                return Quantity(result[0], result[1], dec=False, boxed=True)
        return _dec_add(self, other.unscaled, other.exp)

    def sub(self, other: Quantity) -> Quantity:
        """``Sub`` on a copy (``int64Amount.Sub`` adds the negation; MinInt64 takes the inf.Dec path)."""
        if not self.dec and not other.dec and other.unscaled != INT64_MIN:
            result = _int64_add(self.unscaled, self.exp, -other.unscaled, other.exp)
            if result is not None:
                return Quantity(result[0], result[1], dec=False, boxed=True)
        return _dec_add(self, -other.unscaled, other.exp)


def from_int(value: int) -> Quantity:
    """``resource.NewQuantity(value, DecimalExponent)``: the int64 state at scale 0."""
    return Quantity(value, 0, dec=False)


def cel_equal(a: Quantity, b: object) -> bool:
    """``apiservercel.Quantity.Equal``: value equality, but only with a non-pointer Quantity operand.

    ``add``/``sub`` return ``*Quantity`` and the type assertion ``other.(Quantity)`` fails for a pointer,
    so ``quantity('2') == quantity('1').add(1)`` is false while ``quantity('1').add(1) == quantity('2')``
    is true; cel-go's ``==`` calls the left operand's ``Equal``.
    """
    return isinstance(b, Quantity) and not b.boxed and a.cmp(b) == 0


# -- parsing -------------------------------------------------------------------------------------------

def parse_quantity(text: str) -> Quantity:
    """``resource.ParseQuantity``; ValueError carries Go's error text.

    Mirrors the fast int64 path (at most 18 significant digits for decimal forms, a precision budget
    for binary suffixes, scale >= nano) and the inf.Dec path, which rounds away from zero to nanos and
    caps binary-suffixed values at 2^63-1.
    """
    if not text:
        raise ValueError(ERR_FORMAT)
    if text == "0":
        return Quantity(0, 0, dec=False)
    positive, value, num, denom, suffix = _split(text)
    base, exponent = _interpret_suffix(suffix)
    mantissa = 1
    if base == 10:
        scale = exponent
        precision = 18 - (len(num) + len(denom))
    else:
        scale = 0
        if exponent >= 0 and not denom:
            mantissa = 1 << exponent
            # Go: 15 - len(num) - int32(float32(exponent)*3/10) - 1; exact for the multiples of 10 used here
            precision = 15 - len(num) - (exponent * 3 // 10) - 1
        else:
            precision = -1
    if precision >= 0:
        scale -= len(denom)
        if scale >= -9:
            result = int(num + denom) * mantissa
            if result <= INT64_MAX:
                return Quantity(result if positive else -result, scale, dec=False)

    unscaled, inf_scale = _scan_decimal(value)
    if base == 10:
        inf_scale -= exponent
    else:
        unscaled <<= exponent
    negative = unscaled < 0
    unscaled = abs(unscaled)
    if unscaled:
        # Round up (away from zero) to nanos: a non-zero request never becomes zero.
        if inf_scale <= 9:
            unscaled = _shift(unscaled, 9 - inf_scale)
        elif inf_scale - 9 >= unscaled.bit_length():  # 10**shift > unscaled: the ceiling is one nano
            unscaled = 1
        else:
            unscaled = -(-unscaled // 10 ** (inf_scale - 9))
        inf_scale = 9
        if base == 2 and unscaled > INT64_MAX * 10**9:
            unscaled, inf_scale = INT64_MAX, 0
    return Quantity(-unscaled if negative else unscaled, -inf_scale, dec=True)


def is_quantity(text: str) -> bool:
    """``isQuantity``: whether :func:`parse_quantity` accepts ``text`` (Go would, however slowly)."""
    try:
        parse_quantity(text)
    except ValueError:
        return False
    except QuantityTooLarge:
        return True
    return True


def _split(s: str) -> tuple[bool, str, str, str, str]:
    """``parseQuantityString``: (positive, value, numerator, denominator, suffix)."""
    positive, pos, end = True, 0, len(s)
    if s[0] == "-":
        positive, pos = False, 1
    elif s[0] == "+":
        pos = 1
    while True:  # leading zeros
        if pos >= end:
            return positive, "0", "0", "", ""
        if s[pos] != "0":
            break
        pos += 1
    i = pos
    while i < end and s[i] in _DIGITS:
        i += 1
    if i >= end:
        return positive, s, s[pos:end], "", ""
    num, pos = s[pos:i] or "0", i
    denom = ""
    if s[pos] == ".":
        pos += 1
        i = pos
        while i < end and s[i] in _DIGITS:
            i += 1
        if i >= end:
            return positive, s, num, s[pos:end], ""
        denom, pos = s[pos:i], i
    value, suffix_start = s[:pos], pos
    i = pos
    while i < end and s[i] in _SUFFIX_CHARS:
        i += 1
    if i >= end:
        return positive, value, num, denom, s[suffix_start:]
    pos = i
    if s[pos] in "+-":
        pos += 1
    while pos < end and s[pos] in _DIGITS:
        pos += 1
    if pos >= end:
        return positive, value, num, denom, s[suffix_start:]
    raise ValueError(ERR_FORMAT)


def _interpret_suffix(suffix: str) -> tuple[int, int]:
    """(base, exponent) of a suffix: decimal SI, binary SI, or ``e``/``E`` + an int32-range exponent."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix]
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix]
    if len(suffix) > 1 and suffix[0] in "eE" and _EXPONENT_RE.fullmatch(suffix[1:]):
        exponent = int(suffix[1:])
        if -_MAX_INT32 <= exponent <= _MAX_INT32:
            return 10, exponent
    raise ValueError(ERR_SUFFIX)


def _scan_decimal(value: str) -> tuple[int, int]:
    """``inf.Dec.SetString`` of the numeric part: (unscaled, inf scale = digits after the point)."""
    m = _DECIMAL_RE.fullmatch(value)
    if m is None or not (m.group(2) or m.group(3)):
        raise ValueError(ERR_NUMERIC)
    sign, whole, frac = m.group(1), m.group(2), m.group(3) or ""
    digits = whole + frac
    # int() refuses more than 4300 digits; Decimal converts long digit strings exactly.
    magnitude = int(digits) if len(digits) <= 4000 else int(Decimal(digits))
    return (-magnitude if sign == "-" else magnitude), len(frac)


# -- arithmetic helpers ----------------------------------------------------------------------------------

def _shift(unscaled: int, digits: int) -> int:
    """``unscaled * 10**digits`` (digits >= 0), refusing absurd alignments."""
    if unscaled == 0 or digits == 0:
        return unscaled
    if digits > MAX_ALIGN_DIGITS:
        raise QuantityTooLarge("quantity too large to compute exactly")
    return unscaled * int(10**digits)


def _positive_scale(value: int, scale: int) -> int | None:
    """``positiveScaleInt64``: ``value * 10**scale`` if it fits an int64."""
    if value == 0 or scale == 0:
        return value
    if scale > 19:
        return None
    result = value * 10**scale
    return result if INT64_MIN <= result <= INT64_MAX else None


def _int64_add(au: int, ascale: int, bu: int, bscale: int) -> tuple[int, int] | None:
    """``int64Amount.Add``: (value, scale), or None where Go falls back to inf.Dec."""
    if bu == 0:
        return au, ascale
    if au == 0:
        return bu, bscale
    if ascale == bscale:
        total, scale = au + bu, ascale
    elif ascale > bscale:
        scaled = _positive_scale(au, ascale - bscale)
        if scaled is None:
            return None
        total, scale = scaled + bu, bscale
    else:
        scaled = _positive_scale(bu, bscale - ascale)
        if scaled is None:
            return None
        total, scale = au + scaled, ascale
    return (total, scale) if INT64_MIN <= total <= INT64_MAX else None


def _dec_add(a: Quantity, bu: int, bexp: int) -> Quantity:
    """``inf.Dec.Add``: exact, at the finer of the two scales."""
    exp = min(a.exp, bexp)
    return Quantity(_shift(a.unscaled, a.exp - exp) + _shift(bu, bexp - exp), exp, dec=True, boxed=True)


def _decimal_order_bounds(q: Quantity) -> tuple[int, int]:
    """Bounds (lo, hi) on e with 10**(e-1) <= |value| < 10**e, from the bit length (no digit counting)."""
    n = abs(q.unscaled).bit_length()
    return n // 4 + q.exp, n // 3 + 1 + q.exp


# Go's math.Pow10 tables: the float64 nearest each power, combined by one multiply or divide.
_POW10 = [float(f"1e{i}") for i in range(32)]
_POW10_POS32 = [float(f"1e{32 * i}") for i in range(10)]
_POW10_NEG32 = [float(f"1e-{32 * i}") for i in range(11)]


def go_pow10(n: int) -> float:
    """Go's ``math.Pow10`` bit for bit (it is not always the correctly rounded power)."""
    if 0 <= n <= 308:
        return _POW10_POS32[n // 32] * _POW10[n % 32]
    if -323 <= n <= 0:
        return _POW10_NEG32[-n // 32] / _POW10[-n % 32]
    return float("inf") if n > 0 else 0.0
