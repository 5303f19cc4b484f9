"""The strict plain-data codec between a candidate process and its judge (stdlib only).

    from diffucode.execution.wire import encode, decode
    decode(encode({"a": [1, 2.5, (None, b"x")], 3: {"s"}}))

Only these exact types cross, nested to at most ``MAX_DEPTH`` levels: None, bool, int, float,
complex, str (lone surrogates kept), bytes, list, tuple, set, frozenset, dict. Anything else
(a subclass included: ``class S(str)`` with an ``__eq__`` that is always true) is refused by
:func:`encode` with :class:`WireError`. :func:`decode` builds only those exact types from the
bytes, whatever they are: malformed, truncated, deep or oversized input raises WireError, never
runs code and never builds another type. This is what keeps a candidate's objects out of the
judge process: all it can send back is a value.

Format: one tag byte per value; ``i<hex>;`` ints, ``f<float.hex>;`` floats, ``c`` + two floats,
``s<n>:<utf-8>`` / ``b<n>:<bytes>``, ``l``/``t``/``S``/``z``/``d`` + ``<n>:`` + the items
(a dict's keys and values alternate). Not marshal or pickle: both build objects a malicious
byte string chooses (and marshal can crash the interpreter on crafted input).

This file is also prepended to the bootstrap and judge programs (they run with ``-I -S`` and
cannot import diffucode), so it must stay self-contained.
"""

MAX_DEPTH = 100


class WireError(ValueError):
    """A value that is not plain data, or bytes that are not a valid encoding."""


def _wire_encode_into(o, out, depth):
    if depth > MAX_DEPTH:
        raise WireError("nested deeper than %d levels (or a cycle)" % MAX_DEPTH)
    t = type(o)
    if o is None:
        out.append(b"N")
    elif o is True:
        out.append(b"T")
    elif o is False:
        out.append(b"F")
    elif t is int:
        out.append(b"i%x;" % o)
    elif t is float:
        out.append(b"f" + float.hex(o).encode("ascii") + b";")
    elif t is str:
        b = o.encode("utf-8", "surrogatepass")
        out.append(b"s%d:" % len(b))
        out.append(b)
    elif t is bytes:
        out.append(b"b%d:" % len(o))
        out.append(o)
    elif t is list or t is tuple or t is set or t is frozenset:
        out.append((b"l" if t is list else b"t" if t is tuple else b"S" if t is set else b"z") + b"%d:" % len(o))
        for x in o:
            _wire_encode_into(x, out, depth + 1)
    elif t is dict:
        out.append(b"d%d:" % len(o))
        for k, v in o.items():
            _wire_encode_into(k, out, depth + 1)
            _wire_encode_into(v, out, depth + 1)
    elif t is complex:
        out.append(b"c" + float.hex(o.real).encode("ascii") + b";" + float.hex(o.imag).encode("ascii") + b";")
    else:
        try:
            name = t.__name__
        except BaseException:
            name = "?"
        raise WireError("not plain data: %s" % (name if type(name) is str else "?"))


def encode(o) -> bytes:
    """``o`` as bytes; WireError for anything that is not plain data (see the module docstring)."""
    out = []
    try:
        _wire_encode_into(o, out, 0)
    except RecursionError:
        raise WireError("nested too deeply") from None
    return b"".join(out)


def _wire_decode_at(d, i, depth):
    if depth > MAX_DEPTH:
        raise WireError("nested deeper than %d levels" % MAX_DEPTH)
    tag = d[i:i + 1]
    i += 1
    if tag == b"N":
        return None, i
    if tag == b"T":
        return True, i
    if tag == b"F":
        return False, i
    if tag == b"i":
        j = d.index(b";", i)
        return int(d[i:j], 16), j + 1
    if tag == b"f":
        j = d.index(b";", i)
        return float.fromhex(d[i:j].decode("ascii")), j + 1
    if tag == b"c":
        j = d.index(b";", i)
        k = d.index(b";", j + 1)
        return complex(float.fromhex(d[i:j].decode("ascii")), float.fromhex(d[j + 1:k].decode("ascii"))), k + 1
    j = d.index(b":", i)
    n = int(d[i:j])
    i = j + 1
    if n < 0 or n > len(d) - i:
        raise WireError("bad length")
    if tag == b"s":
        return d[i:i + n].decode("utf-8", "surrogatepass"), i + n
    if tag == b"b":
        return bytes(d[i:i + n]), i + n
    if tag == b"d":
        out = {}
        for _ in range(n):
            k, i = _wire_decode_at(d, i, depth + 1)
            v, i = _wire_decode_at(d, i, depth + 1)
            out[k] = v
        return out, i
    if tag in (b"l", b"t", b"S", b"z"):
        items = []
        for _ in range(n):
            x, i = _wire_decode_at(d, i, depth + 1)
            items.append(x)
        if tag == b"l":
            return items, i
        if tag == b"t":
            return tuple(items), i
        return (set(items) if tag == b"S" else frozenset(items)), i
    raise WireError("unknown tag %r" % (tag,))


def decode(data) -> object:
    """The value ``data`` encodes; WireError for anything else (never another type, never code)."""
    d = bytes(data)
    try:
        v, i = _wire_decode_at(d, 0, 0)
    except WireError:
        raise
    except (ValueError, IndexError, TypeError, OverflowError, UnicodeDecodeError, RecursionError, MemoryError) as e:
        raise WireError("invalid encoding: %s" % type(e).__name__) from None
    if i != len(d):
        raise WireError("trailing bytes after the value")
    return v


# The names the bootstrap and the judge use (they have their own ``encode`` helpers).
wire_encode, wire_decode, WireErrorType = encode, decode, WireError
