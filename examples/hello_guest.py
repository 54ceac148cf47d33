"""Hello guest: a 16-bit real-mode guest prints through port 0xE9 and halts.

Run: python examples/hello_guest.py
"""

from __future__ import annotations

from mshv import HaltIntercept, IoPortIntercept
from mshv.testing import assemble, partition_with_one_vp

GUEST = """
    mov $msg, %si
1:  lodsb
    test %al, %al
    jz 2f
    out %al, $0xe9          # one character per exit
    jmp 1b
2:  hlt
msg: .asciz "Hello from a real-mode guest!"
"""


def main() -> None:
    text = []
    with partition_with_one_vp(assemble(GUEST), lapic=False) as (_partition, vp, _memory):
        while True:
            exit_ = vp.run()
            if isinstance(exit_, HaltIntercept):
                break
            assert isinstance(exit_, IoPortIntercept) and exit_.port == 0xE9, exit_
            text.append(chr(exit_.value))
            vp.complete_io(exit_)  # RIP past the OUT: the VMM completes every intercept
    print("".join(text))
    print(f"guest halted after {vp.exits} exits")


if __name__ == "__main__":
    main()
