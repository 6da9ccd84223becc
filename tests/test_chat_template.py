"""Chat templates: the real models' templates, the fallback, the sandbox and its budgets, stop ids."""
import time

import pytest

from wren.engine.runtime import chat_template as ct_mod
from wren.engine.runtime import gguffile
from wren.engine.runtime.chat_template import ChatTemplate, ChatTemplateError
from wren.engine.runtime.template_sandbox import compile_template
from wren.engine.runtime.tokenizer import TYPE_CONTROL, TYPE_NORMAL, Tokenizer

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "What is 2+2?"},
]
CHATML = ("<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
          "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
          "<|im_start|>assistant\n")
GEMMA = ("<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
         "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n")

_LOADED = {}


@pytest.fixture(scope="module")
def model_ct(real_model):
    name, path, _ = real_model
    if path not in _LOADED:
        with gguffile.read(path) as g:
            tok = Tokenizer.from_gguf(g)
            _LOADED[path] = (tok, ChatTemplate.from_gguf(g, tok), g.metadata.get("tokenizer.chat_template"))
    return (name, *_LOADED[path])


@pytest.fixture(scope="module")
def tiny_tok():
    """A model-free byte-level vocabulary with ChatML's special tokens."""
    from wren.engine.runtime.tokenizer import BYTE_ENC
    tokens = list(BYTE_ENC) + ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    types = [TYPE_NORMAL] * 256 + [TYPE_CONTROL] * 3
    return Tokenizer(tokens, types, None, [], model="gpt2", pre="gpt-2", bos_id=257, eos_id=258)


# --------------------------------------------------------------------------------------------- real models
def test_real_templates_render_chatml(model_ct):
    name, tok, ct, source = model_ct
    if name.startswith("Gemma"):
        pytest.skip("Gemma 3 270M (base) has no template; see test_gemma_falls_back_to_its_turn_format")
    assert source and ct.name == "gguf" and ct.fallback_reason is None and ct.source == source
    assert ct.render(CONVERSATION) == CHATML
    assert ct.render(CONVERSATION, add_generation_prompt=False) == CHATML[:-len("<|im_start|>assistant\n")]
    ids = ct.encode(CONVERSATION)
    assert ids == tok.encode(CHATML, add_special=True, parse_special=True)
    assert ids.count(tok.token_to_id("<|im_start|>")) == 5 and ids.count(tok.token_to_id("<|im_end|>")) == 4


def test_real_templates_default_system_prompts(model_ct):
    name, tok, ct, _ = model_ct
    if name.startswith("Gemma"):
        pytest.skip("no template")
    text = ct.render(CONVERSATION[1:])
    if name.startswith("SmolLM2"):
        assert text.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    elif name.startswith("Qwen"):
        assert text.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    assert text.endswith(CHATML[CHATML.index("<|im_start|>user"):])


def test_gemma_falls_back_to_its_turn_format(model_ct):
    name, tok, ct, source = model_ct
    if not name.startswith("Gemma"):
        pytest.skip("the other models carry a template")
    assert source is None and ct.source is None
    assert ct.name == "gemma" and "no chat template" in ct.fallback_reason
    assert ct.render(CONVERSATION) == GEMMA
    ids = ct.encode(CONVERSATION)
    assert ids[:2] == [tok.bos_id, tok.token_to_id("<start_of_turn>")] and ids.count(tok.bos_id) == 1
    assert ids.count(tok.token_to_id("<end_of_turn>")) == 3


def test_stop_ids(model_ct):
    name, tok, ct, _ = model_ct
    assert tok.eos_id in ct.stop_ids
    if name.startswith("Gemma"):
        assert ct.stop_ids == {tok.token_to_id("<eos>"), tok.token_to_id("<end_of_turn>")}
    else:
        im_end, eot = tok.token_to_id("<|im_end|>"), tok.token_to_id("<|endoftext|>")
        assert im_end in ct.stop_ids and ct.stop_ids == {im_end, eot}
    assert all(tok.is_control(i) for i in ct.stop_ids)


def test_template_with_bos_is_not_doubled(model_ct):
    name, tok, _, _ = model_ct
    if not tok.add_bos:
        pytest.skip("the tokenizer adds no BOS")
    ct = ChatTemplate(tok, "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}"
                           "<end_of_turn>\n{% endfor %}")
    assert ct.name == "gguf"
    ids = ct.encode(CONVERSATION[1:2], add_generation_prompt=False)
    assert ids[0] == tok.bos_id and ids[1] != tok.bos_id


# --------------------------------------------------------------------------------------------- fallback
def test_chatml_fallback_without_template(tiny_tok):
    ct = ChatTemplate(tiny_tok, None)
    assert ct.name == "chatml" and ct.fallback_reason and ct.source is None
    assert ct.render(CONVERSATION) == CHATML
    assert ct.stop_ids == {tiny_tok.token_to_id("<|im_end|>"), tiny_tok.token_to_id("<|endoftext|>")}


@pytest.mark.parametrize("source, why", [
    ("{% for m in messages %}{{ m.content }", "does not compile"),
    ("{{ raise_exception('this template is broken') }}", "this template is broken"),
    ("{% for m in messages %}{{ m.content.no_such_method() }}{% endfor %}", "cannot render"),
    ("Hello!", "leaves out the conversation"),
])
def test_broken_template_falls_back(tiny_tok, source, why):
    ct = ChatTemplate(tiny_tok, source)
    assert ct.name == "chatml" and why in ct.fallback_reason
    assert ct.render(CONVERSATION) == CHATML


def test_template_needing_alternating_roles_is_kept(tiny_tok):
    src = ("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
           "[{{ m.role }}]{{ m.content }}{% endfor %}")
    ct = ChatTemplate(tiny_tok, src)
    assert ct.name == "gguf"  # the probe without a system message renders
    assert ct.render(CONVERSATION[1:], add_generation_prompt=False) == \
        "[user]Hi there[assistant]Hello.[user]What is 2+2?"
    with pytest.raises(ChatTemplateError, match="no system role") as e:
        ct.render(CONVERSATION)
    assert e.value.kind == "template"


def test_template_globals(tiny_tok):
    src = ("{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ strftime_now('%Y') }}|{{ add_generation_prompt }}"
           "|{{ {'a': 'é'}|tojson }}|{% for m in messages %}{{ m.content }}{% endfor %}")
    ct = ChatTemplate(tiny_tok, src)
    year = time.strftime("%Y")
    assert ct.render(CONVERSATION[1:2]) == f'<|im_start|>|<|im_end|>|True|{year}|True|{{"a": "é"}}|Hi there'
    assert "|False|" in ct.render(CONVERSATION[1:2], tools=[{"type": "function"}])


def test_bad_messages_are_refused(tiny_tok):
    ct = ChatTemplate(tiny_tok, None)
    with pytest.raises(ChatTemplateError):
        ct.render("hello")
    with pytest.raises(ChatTemplateError):
        ct.render([{"content": "no role"}])


# --------------------------------------------------------------------------------------------- sandbox
HOSTILE = [
    "{{ ''.__class__.__mro__ }}{% for m in messages %}{{ m.content }}{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}{% for m in messages %}{{ m.content }}{% endfor %}",
    "{{ joiner.__init__.__globals__.os.system('echo pwned') }}",
    "{{ namespace.__init__.__globals__['sys'].modules }}",
    "{{ self.__init__.__globals__.__builtins__ }}",
    "{% for m in messages %}{{ m.content }}{{ m.items.__self__.__class__.__base__.__subclasses__() }}{% endfor %}",
    "{{ raise_exception.__globals__ }}",
    "{{ ''.__class__ }}{% for m in messages %}{{ m.content }}{% endfor %}",
    "{{ messages.__len__() }}{% for m in messages %}{{ m.content }}{% endfor %}",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_template_cannot_reach_python(tiny_tok, source):
    ct = ChatTemplate(tiny_tok, source)
    assert ct.name == "chatml", f"hostile template was adopted: {source}"
    assert "blocked by the sandbox" in ct.fallback_reason and "unsafe" in ct.fallback_reason
    out = ct.render(CONVERSATION)
    assert out == CHATML
    for leak in ("class", "object", "module", "function", "builtins", "pwned"):
        assert leak not in out


def test_sandbox_violation_at_render_time_raises_our_error(tiny_tok):
    src = ("{% for m in messages %}{% if m.role == 'evil' %}{{ m.content.__class__.__mro__ }}{% endif %}"
           "{{ m.content }}{% endfor %}")
    ct = ChatTemplate(tiny_tok, src)
    assert ct.name == "gguf"  # harmless for ordinary conversations
    with pytest.raises(ChatTemplateError) as e:
        ct.render([{"role": "evil", "content": "x"}])
    assert e.value.kind == "sandbox" and "class" not in ct.render(CONVERSATION)


@pytest.mark.parametrize("source", [
    "{{ 'a' * 1000000000 }}",
    "{{ 'a'|center(1000000000) }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ 2 ** 100000 ** 2 }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(200) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "{% for i in range(10000000) %}x{% endfor %}",
])
def test_runaway_templates_are_stopped(tiny_tok, source):
    ct = ChatTemplate(tiny_tok, source + "{% for m in messages %}{{ m.content }}{% endfor %}")
    assert ct.name == "chatml" and ct.fallback_reason


LONG = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% set s = 'ab' * 50000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "{% set ns = namespace(s='') %}{% for m in messages * 100000 %}{% set ns.s = m.role %}{% endfor %}",
]


@pytest.mark.parametrize("source", LONG)
def test_long_template_hits_the_step_budget(tiny_tok, source, monkeypatch):
    monkeypatch.setattr(ct_mod, "RENDER_STEPS", 5000)
    ct = ChatTemplate(tiny_tok, source + "{% for m in messages %}{{ m.content }}{% endfor %}")
    assert ct.name == "chatml" and "more than 5000 steps" in ct.fallback_reason


def test_the_step_budget_is_a_count_and_grows_with_the_conversation(tiny_tok, monkeypatch):
    """A render takes the same steps every time (no clock involved), and a long conversation gets more of them."""
    monkeypatch.setattr(ct_mod, "RENDER_STEPS", 200)
    monkeypatch.setattr(ct_mod, "STEPS_PER_MESSAGE", 20)
    ct = ChatTemplate(tiny_tok, "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}")
    assert ct.name == "gguf"
    # a step per message for the loop and one per lookup: 3 a message, well within 20
    many = [{"role": "user", "content": f"m{i}"} for i in range(300)]
    assert ct.render(many).count("user: m") == 300
    ct_tight = ChatTemplate(tiny_tok, "{% for m in messages %}{% for i in range(20) %}{% endfor %}"
                                      "{{ m.content }}{% endfor %}")
    assert ct_tight.name == "gguf"  # the probes are short
    for _ in range(3):
        with pytest.raises(ChatTemplateError, match="more than 6000 steps") as e:
            ct_tight.render(many)
        assert e.value.kind == "budget"


# --------------------------------------------------------------------------------------------- every construct bounded
# Each template below once hung a render or built gigabytes. Now its size is predicted before the work (and refused
# over the output budget), or its work is counted in steps; at load (Engine.open renders probe conversations) the
# template is replaced by the fallback with the reason.
STEPS = "more than"
SIZE = "would exceed"
BOUNDED = {
    "loop over a string": ("{% set x = 'a' * 900000 %}{% for c in x %}{% endfor %}", STEPS),
    "nested loops over a string": ("{% set x = 'ab' * 500 %}{% for c in x %}{% for d in x %}{% endfor %}{% endfor %}",
                                   STEPS),
    "x|join(x)": ("{% set x = 'ab' * 1000 %}{{ x|join(x) }}", SIZE),
    "x.join(x)": ("{% set x = 'ab' * 1000 %}{{ x.join(x) }}", SIZE),
    "x|replace('', x)": ("{% set x = 'ab' * 1000 %}{{ x|replace('', x) }}", SIZE),
    "x.replace('', x)": ("{% set x = 'ab' * 1000 %}{{ x.replace('', x) }}", SIZE),
    "'%0900000000d'|format(1)": ("{{ '%0900000000d'|format(1) }}", SIZE),
    "'%.900000000f' % 1.5": ("{{ '%.900000000f' % 1.5 }}", SIZE),
    "'{:>900000000}'.format(1)": ("{{ '{:>900000000}'.format(1) }}", SIZE),
    "'{x:>900000000}'.format_map(...)": ("{{ '{x:>900000000}'.format_map({'x': 1}) }}", SIZE),
    "~ doubling": ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                   SIZE),
    "* repetition": ("{% set x = 'ab' * 400000 %}{{ x * 3 }}", SIZE),
    "list * repetition": ("{% set x = [1] * 400000 %}{{ (x * 3)|length }}", SIZE),
    "+ doubling": ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                   SIZE),
    "macro doubling": ("{% macro d(s) %}{{ s }}{{ s }}{% endmacro %}{% set ns = namespace(s='ab') %}"
                       "{% for i in range(40) %}{% set ns.s = d(ns.s) %}{% endfor %}", SIZE),
    "set block doubling": ("{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set t %}{{ ns.s }}{{ ns.s }}"
                           "{% endset %}{% set ns.s = t %}{% endfor %}", SIZE),
    "center in a loop": ("{% for i in range(100000) %}{% set y = 'a'|center(1000000) %}{% endfor %}", STEPS),
    "indent": ("{% set x = 'a\\n' * 100000 %}{{ x|indent(100) }}", SIZE),
    "expandtabs": ("{% set x = '\\t' * 100000 %}{{ x.expandtabs(100) }}", SIZE),
    "batch fill": ("{{ ('a' * 500000)|batch(900000, 'x')|list }}",
                   SIZE),
    "comparisons of a long string": ("{% set x = 'a' * 900000 %}{% for i in range(100000) %}{% if x == x %}{% endif %}"
                                     "{% endfor %}", STEPS),
    "in on a long string": ("{% set x = 'a' * 900000 %}{% for i in range(100000) %}{% if 'b' in x %}{% endif %}"
                            "{% endfor %}", STEPS),
    "is in on a long string": ("{% set x = 'a' * 900000 %}{% for i in range(100000) %}{% if 'b' is in x %}{% endif %}"
                               "{% endfor %}", STEPS),
    "method scanning a long string": ("{% set x = 'a' * 900000 %}{% for i in range(100000) %}{% set n = x.count('b') %}"
                                      "{% endfor %}", STEPS),
    "str.translate": ("{{ 'ab'.translate({97: 'x'}) }}", "not allowed"),
    "recursive loop over a string": ("{% set x = 'a' * 900000 %}{% for i in range(100000) recursive %}"
                                     "{% if loop.depth == 1 %}{{ loop(x) }}{% endif %}{% endfor %}", STEPS),
    "sum of lists": ("{{ [[1] * 1000] * 1000|sum(start=[]) }}", "not allowed"),
    "integer squaring": ("{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}"
                         "{% endfor %}", "too large"),
    "tojson indent": ("{{ [[1]] * 1000|tojson(indent=100000) }}", "not allowed"),
}


@pytest.mark.parametrize("name", BOUNDED)
def test_every_construct_is_bounded(tiny_tok, name):
    source, why = BOUNDED[name]
    ct = ChatTemplate(tiny_tok, source + "{% for m in messages %}{{ m.content }}{% endfor %}")
    assert ct.name == "chatml" and why in ct.fallback_reason, ct.fallback_reason
    with pytest.raises(ChatTemplateError, match=why):
        ct._render_jinja(compile_template(source), CONVERSATION, True, {})


def test_a_template_that_explodes_on_a_later_turn_fails_on_that_turn(tiny_tok):
    """Harmless for the probe conversations (kept at load), it stops with the budget's error on the turn where it
    explodes, rather than hanging the engine."""
    src = ("{% if messages|length > 4 %}{% set x = 'ab' * 400000 %}{% for c in x %}{% for d in x %}{% endfor %}"
           "{% endfor %}{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}")
    ct = ChatTemplate(tiny_tok, src)
    assert ct.name == "gguf"
    assert ct.render(CONVERSATION) == "".join(m["content"] for m in CONVERSATION)
    with pytest.raises(ChatTemplateError, match="more than 100000 steps") as e:
        ct.render(CONVERSATION + [{"role": "assistant", "content": "4."}, {"role": "user", "content": "And 3+3?"}])
    assert e.value.kind == "budget"


def test_ordinary_constructs_still_work(tiny_tok):
    src = ("{{ messages|map(attribute='role')|join(', ') }}|{{ '%-6s|%3d' % ('ab', 7) }}|{{ '{:>4}'.format('x') }}|"
           "{{ 'a-b'.replace('-', '+') }}|{{ ', '.join(['p', 'q']) }}|{{ 'x' ~ 1 ~ 'y' }}|{{ [1, 2]|sum }}|"
           "{{ 'ab'|center(6) }}|{{ {'k': [1]}|tojson(indent=2) }}|{% set t %}[{{ 'in' }}]{% endset %}{{ t }}|"
           "{% for m in messages if 'Hi' in m.content %}{{ m.content }}{% endfor %}|{{ 2 ** 10 }}")
    ct = ChatTemplate(tiny_tok, src + "{% for m in messages %}{{ m.content }}{% endfor %}")
    assert ct.name == "gguf", ct.fallback_reason
    out = ct.render(CONVERSATION[1:3], add_generation_prompt=False)
    assert out.startswith('user, assistant|ab    |  7|   x|a+b|p, q|x1y|3|  ab  |{\n  "k": [\n    1\n  ]\n}|[in]|'
                          'Hi there|1024')
