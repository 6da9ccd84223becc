"""GPT-2's byte-level alphabet: every byte has a printable character, so a byte-level BPE vocabulary stores the bytes
of its tokens as text."""
from __future__ import annotations


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte encoder: byte -> printable character."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, n = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + n)
            n += 1
    return [table[b] for b in range(256)]


#: byte -> its character
BYTE_ENC = _bytes_to_unicode()
_BYTE_DEC = {c: b for b, c in enumerate(BYTE_ENC)}
_LATIN1_TO_BYTELEVEL = str.maketrans({chr(b): c for b, c in enumerate(BYTE_ENC)})


def encode(text: str) -> str:
    """The byte-level string of `text`'s UTF-8 bytes."""
    return text.encode("utf-8").decode("latin-1").translate(_LATIN1_TO_BYTELEVEL)


def decode(text: str) -> bytes:
    """The bytes a byte-level string stands for; a character outside the alphabet stands for its own UTF-8."""
    dec = _BYTE_DEC
    return b"".join(bytes((dec[c],)) if c in dec else c.encode("utf-8") for c in text)
