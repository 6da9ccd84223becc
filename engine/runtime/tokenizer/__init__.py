"""Tokenizer built from a GGUF vocabulary, reproducing llama.cpp's `llama_tokenize` / `llama_token_to_piece`, in pure
Python and exact against llama.cpp's reference ids.

    vocab.py        the token table (texts, ids, scores, attribute bits), token types, TokenizerError
    special.py      llama.cpp's special-token detection (EOG, FIM) and the partition that cuts them out of the text
    pretokenize.py  byte-level BPE's pre-tokenizer regexes, by `tokenizer.ggml.pre` name
    bytelevel.py    GPT-2's byte -> character alphabet
    merge.py        the merge loop BPE and SentencePiece share, and the word cache
    bpe.py          byte-level BPE (`tokenizer.ggml.model` = gpt2)
    spm.py          SentencePiece-style (`tokenizer.ggml.model` = llama: Llama 2, Gemma)
    core.py         Tokenizer: construction from GGUF metadata, encode, decode
    stream.py       StreamDecoder: generated ids -> whole characters
"""
from wren.engine.runtime.tokenizer.bytelevel import BYTE_ENC
from wren.engine.runtime.tokenizer.core import Tokenizer
from wren.engine.runtime.tokenizer.stream import StreamDecoder
from wren.engine.runtime.tokenizer.vocab import (TYPE_BYTE, TYPE_CONTROL, TYPE_NORMAL, TYPE_UNDEFINED, TYPE_UNKNOWN,
                                                 TYPE_UNUSED, TYPE_USER_DEFINED, TokenizerError)

__all__ = ["Tokenizer", "StreamDecoder", "TokenizerError", "BYTE_ENC", "TYPE_UNDEFINED", "TYPE_NORMAL",
           "TYPE_UNKNOWN", "TYPE_CONTROL", "TYPE_USER_DEFINED", "TYPE_UNUSED", "TYPE_BYTE"]
