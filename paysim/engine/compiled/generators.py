"""The replication's random generators as the kernels take them: a table of each numpy
Generator's bit-generator pointers, from which ``generator_at`` makes the Generator that
numba's own ``rng.exponential(...)`` and the rest draw from.

Why not a typed list of Generators: fetching an item from one costs a call into numba's
list helper and an atomic reference count on and off, several times per event; that was
a sixth of the loop's time. A generator made from the table owns nothing (no reference to
count), and draws exactly what the Generator it points to would, advancing that same state.
The caller keeps the Generators alive while a kernel runs.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

# the bit generator's fields, in numba's model of it (numba.np.random.generator_core)
_FIELDS = ("state_address", "state", "fnptr_next_uint64", "fnptr_next_uint32", "fnptr_next_double")
_GENERATOR = types.NumPyRandomGeneratorType("generator")
_BIT_GENERATOR = types.NumPyRandomBitGeneratorType("bit_generator")


def generator_table(generators: list[np.random.Generator]) -> np.ndarray:
    """One row of bit-generator pointers per generator, in ``_FIELDS`` order."""
    table = np.zeros((max(len(generators), 1), len(_FIELDS)), np.uint64)
    for row, generator in enumerate(generators):
        bits = generator.bit_generator.ctypes
        table[row] = (bits.state_address, bits.state.value, *(
            ctypes.cast(f, ctypes.c_void_p).value for f in (bits.next_uint64, bits.next_uint32, bits.next_double)))
    return table


@intrinsic
def _generator_at(typingctx, table, row):
    """The Generator of row ``row`` of a generator table; a negative row counts from the end,
    as a list's index does (the tables name -1 for a component that has no generator, which
    is then never drawn from)."""
    def codegen(context, builder, signature, args):
        table_type = signature.args[0]
        array = context.make_array(table_type)(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        rows = cgutils.unpack_tuple(builder, array.shape, 2)[0]
        index = builder.select(builder.icmp_signed("<", index, index.type(0)), builder.add(index, rows), index)
        bits = cgutils.create_struct_proxy(_BIT_GENERATOR)(context, builder)
        for column, name in enumerate(_FIELDS):
            at = cgutils.get_item_pointer(context, builder, table_type, array,
                                          [index, context.get_constant(types.intp, column)])
            setattr(bits, name, builder.load(at))
        bits.bit_generator = bits.state_address    # (numba's draws never read it)
        bits.parent = cgutils.get_null_value(bits.parent.type)
        generator = cgutils.create_struct_proxy(_GENERATOR)(context, builder)
        generator.bit_generator = bits._getvalue()
        generator.meminfo = cgutils.get_null_value(generator.meminfo.type)   # nothing to count
        generator.parent = cgutils.get_null_value(generator.parent.type)
        return generator._getvalue()

    return _GENERATOR(table, row), codegen


# what kernels call (numba types the intrinsic's arguments itself: ``typingctx`` is not one of them)
generator_at: Callable[[np.ndarray, int], np.random.Generator] = _generator_at   # type: ignore[assignment]
