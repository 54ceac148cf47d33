"""The VP register page (struct hv_vp_register_page, mmap of the VP fd) from a C client: valid
from CREATE_VP on and one state with the register hypercalls in both directions, before and
after the first run."""

from __future__ import annotations

from pathlib import Path

import pytest
from guest import assemble, compile_c
from test_synthetic_regs import num, run_case

HERE = Path(__file__).resolve().parent
HVMSG_X64_IO_PORT_INTERCEPT = 0x80010000


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, preload_env) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("regpage")
    client = compile_c(HERE / "synthetic_client.c", tmp)
    image = tmp / "out.bin"
    image.write_bytes(assemble("out %al, $0x10\n hlt\n", tmp, 16))
    return run_case(client, preload_env, "regpage", str(image))


def test_valid_from_create_vp(page):
    """Before any register call or run: version 1, isvalid 1, dirty 0, the x86 reset state
    (CS F000 base FFFF0000, RIP FFF0, CR0 60000010)."""
    assert num(page, "fresh.version") == 1 and num(page, "fresh.isvalid") == 1
    assert num(page, "fresh.dirty") == 0
    assert num(page, "fresh.rip") == 0xFFF0
    assert num(page, "fresh.cs_selector") == 0xF000 and num(page, "fresh.cs_base") == 0xFFFF0000
    assert num(page, "fresh.cr0") == 0x60000010


def test_hypercall_writes_show_in_the_page(page):
    """SetVpRegisters of RAX, DS and CR0 before the first run shows in the page."""
    assert num(page, "h2p.rax") == 0x1234
    assert num(page, "h2p.ds_selector") == 0x2000 and num(page, "h2p.ds_base") == 0x20000
    assert num(page, "h2p.cr0") == 0x60000010


def test_dirty_page_writes_are_what_get_returns(page):
    """A page write with its class bit in dirty (GENERAL, SEGMENT) is what GetVpRegisters
    returns, before the first run; the hypervisor has then taken it (dirty 0). A write
    without its dirty bit is not taken."""
    assert num(page, "p2h.rbx") == 0x5678
    assert num(page, "p2h.es_selector") == 0x3000 and num(page, "p2h.es_base") == 0x30000
    assert num(page, "p2h.dirty_after") == 0
    assert num(page, "clean.rcx") != 0x9999


def test_both_directions_after_a_run(page):
    """After an intercept the page holds its state, and both directions still hold."""
    assert num(page, "run.type") == HVMSG_X64_IO_PORT_INTERCEPT
    assert num(page, "run.isvalid") == 1 and num(page, "run.rax") == 0x42
    assert num(page, "after.p2h.rdx") == 0xABCD
    assert num(page, "after.h2p.rsi") == 0x4321
