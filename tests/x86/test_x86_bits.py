"""BT, BTS, BTR, BTC on MMIO, with an immediate bit offset (taken modulo the operand width) and
a register one (signed: it may name a word before or after the operand, which is the word the
CPU accesses and the intercept reports), checked against the CPU doing the same on RAM."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from x86_guest import INPUT_FLAGS, Oracle, register, sizes, suffix

from mshv.x86.cpu import CF

OFFSET = 0x800
WORD_SIZES = st.sampled_from([2, 4, 8])
SETTINGS = settings(max_examples=60, deadline=None)
window = st.integers(0, 1 << 32).map(lambda seed: random.Random(seed).randbytes(0x1000))


@SETTINGS
@given(
    data=st.data(), mnemonic=st.sampled_from(["bt", "bts", "btr", "btc"]), content=window, flags=INPUT_FLAGS
)
def test_register_bit_offset(
    oracle: Oracle, data: st.DataObject, mnemonic: str, content: bytes, flags: int
) -> None:
    """CF is the bit; ZF and the undefined OF/SF/AF/PF: test_x86_undefined.py."""
    size = data.draw(WORD_SIZES.filter(lambda s: s in sizes(oracle.mode)), label="size")
    offset = data.draw(st.integers(-0x3000, 0x3000), label="bit offset")  # within +-0x600 bytes
    oracle.compare(
        f"{mnemonic}{suffix(size)} {register('rcx', size)}, {oracle.mem('rbx', OFFSET)}",
        {"rcx": offset & ((1 << (8 * size)) - 1), "rbx": 0},
        content,
        rflags=flags,
        flags_mask=CF,
    )


@SETTINGS
@given(
    data=st.data(), mnemonic=st.sampled_from(["bt", "bts", "btr", "btc"]), content=window, flags=INPUT_FLAGS
)
def test_immediate_bit_offset(
    oracle: Oracle, data: st.DataObject, mnemonic: str, content: bytes, flags: int
) -> None:
    size = data.draw(WORD_SIZES.filter(lambda s: s in sizes(oracle.mode)), label="size")
    bit = data.draw(st.integers(0, 255), label="bit")
    oracle.compare(
        f"{mnemonic}{suffix(size)} ${bit}, {oracle.mem('rbx', OFFSET)}",
        {"rbx": 0},
        content,
        rflags=flags,
        flags_mask=CF,
    )
