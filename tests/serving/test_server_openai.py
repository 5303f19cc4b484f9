"""`diffucode serve` talked to with the official `openai` client, on the bundled model and on a
tiny bidirectional model (infilling): every answer is compared with the engine run directly on
that one request."""

import threading

import pytest

openai = pytest.importorskip("openai")

PROMPTS = ["def is_palindrome(s):\n", "def add(a, b):\n", "def fib(n):\n    if n < 2:\n",
           "def count_vowels(s):\n", "def maximum(xs):\n", "def reverse_words(s):\n"]


def test_models_lists_the_served_name(nano_server, make_client):
    c = make_client(nano_server)
    assert [m.id for m in c.models.list().data] == ["nano"]
    assert c.models.retrieve("nano").id == "nano"


def test_completion_equals_the_engine(nano_server, make_client, alone):
    c = make_client(nano_server)
    model, tok = nano_server.worker.model, nano_server.worker.tokenizer
    r = c.completions.create(model="nano", prompt=PROMPTS[0], max_tokens=32)
    want = alone(model, tok, tok(PROMPTS[0]).input_ids, max_tokens=32)[0]
    assert r.choices[0].text == want
    assert "return" in want  # the bundled model writes a body, so the comparison is not of empty strings
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == len(tok(PROMPTS[0]).input_ids)
    assert 0 < r.usage.completion_tokens <= 32
    assert r.model_extra["diffucode"]["nfe"] >= 1


def test_stop_strings_cut_the_text(nano_server, make_client, alone):
    c = make_client(nano_server)
    model, tok = nano_server.worker.model, nano_server.worker.tokenizer
    full = alone(model, tok, tok(PROMPTS[0]).input_ids, max_tokens=32)[0]
    stop = "return"
    assert stop in full
    r = c.completions.create(model="nano", prompt=PROMPTS[0], max_tokens=32, stop=[stop, "zzz"])
    assert r.choices[0].text == full[:full.index(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_length_finish_reason_when_the_canvas_fills(nano_server, make_client):
    r = make_client(nano_server).completions.create(model="nano", prompt=PROMPTS[0], max_tokens=4)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 4


def test_chat_uses_the_chat_template(nano_server, make_client, alone):
    c = make_client(nano_server)
    model, tok = nano_server.worker.model, nano_server.worker.tokenizer
    msgs = [{"role": "user", "content": "Write a function is_palindrome(s)."}]
    r = c.chat.completions.create(model="nano", messages=msgs, max_tokens=64)
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    want = alone(model, tok, tok(text, add_special_tokens=False).input_ids, max_tokens=64, stop_ids=[im_end])[0]
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == want and "def " in want


@pytest.mark.parametrize("endpoint", ["completions", "chat"])
def test_streaming_deltas_concatenate_to_the_text(nano_server, make_client, endpoint):
    c = make_client(nano_server)
    if endpoint == "completions":
        whole = c.completions.create(model="nano", prompt=PROMPTS[0], max_tokens=32).choices[0].text
        chunks = list(c.completions.create(model="nano", prompt=PROMPTS[0], max_tokens=32, stream=True,
                                           stream_options={"include_usage": True}))
        pieces = [ch.choices[0].text for ch in chunks if ch.choices]
    else:
        msgs = [{"role": "user", "content": "Write a function add(a, b)."}]
        whole = c.chat.completions.create(model="nano", messages=msgs, max_tokens=64).choices[0].message.content
        chunks = list(c.chat.completions.create(model="nano", messages=msgs, max_tokens=64, stream=True,
                                                stream_options={"include_usage": True}))
        assert chunks[0].choices[0].delta.role == "assistant"
        pieces = [ch.choices[0].delta.content or "" for ch in chunks if ch.choices]
    assert "".join(pieces) == whole
    assert sum(1 for p in pieces if p) >= 3  # text arrived block by block, not in one piece at the end
    finals = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finals == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_canvas_shows_masks_filling_in(nano_server, make_client):
    c = make_client(nano_server)
    chunks = list(c.completions.create(model="nano", prompt=PROMPTS[1], max_tokens=16, stream=True,
                                       extra_body={"stream_canvas": True}))
    canvases = [ch.choices[0].model_extra["canvas"] for ch in chunks if ch.choices and "canvas" in ch.choices[0].model_extra]
    assert len(canvases) >= 2
    masks = [cv.count("\u2591") for cv in canvases]
    assert masks == sorted(masks, reverse=True) and masks[0] > masks[-1]


def test_n_and_prompt_lists_follow_openai_ordering(nano_server, make_client, alone):
    c = make_client(nano_server)
    model, tok = nano_server.worker.model, nano_server.worker.tokenizer
    r = c.completions.create(model="nano", prompt=PROMPTS[:2], max_tokens=16, n=2, temperature=0.9, seed=7)
    assert [ch.index for ch in r.choices] == [0, 1, 2, 3]
    # one request alone = the engine on its prompts with num_return_sequences = n and the request's seed
    ids0 = tok(PROMPTS[0]).input_ids
    want0 = alone(model, tok, ids0, max_tokens=16, n=2, temperature=0.9, seed=7)
    assert [r.choices[0].text, r.choices[1].text] == want0


def test_concurrent_requests_are_batched_and_equal_one_by_one(nano_server, make_client, alone):
    """Requests sent together are decoded in one batch (rows of different prompt lengths) and each
    gets exactly what it gets alone: greedy ones, and seeded sampled ones."""
    c = make_client(nano_server)
    model, tok = nano_server.worker.model, nano_server.worker.tokenizer
    jobs = [dict(prompt=p, max_tokens=24) for p in PROMPTS]
    jobs += [dict(prompt=p, max_tokens=24, temperature=0.8, top_p=0.95, seed=100 + i) for i, p in enumerate(PROMPTS)]
    results = [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def send(i):
        barrier.wait()
        results[i] = c.completions.create(model="nano", **jobs[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert all(r is not None for r in results)
    sizes = [r.model_extra["diffucode"]["batch_rows"] for r in results]
    assert max(sizes) >= 3, sizes  # they really were decoded together
    for job, r in zip(jobs, results):
        kw = {k: v for k, v in job.items() if k in ("temperature", "top_p", "seed")}
        want = alone(model, tok, tok(job["prompt"]).input_ids, max_tokens=24, **kw)[0]
        assert r.choices[0].text == want, job


def test_infilling_with_suffix_on_a_bidirectional_model(mdm_server, make_client, alone):
    c = make_client(mdm_server)
    model, tok = mdm_server.worker.model, mdm_server.worker.tokenizer
    prompt, suffix = "def f(x):\n    y = ", "\n    return y\n"
    r = c.completions.create(model="tiny-mdm", prompt=prompt, suffix=suffix, max_tokens=8)
    want = alone(model, tok, tok(prompt).input_ids, max_tokens=8,
                 suffix_ids=tok(suffix, add_special_tokens=False).input_ids)[0]
    without = alone(model, tok, tok(prompt).input_ids, max_tokens=8)[0]
    assert r.choices[0].text == want
    assert want != without  # the suffix changed what the model wrote: it was really used
    # streamed infilling gives the same text
    pieces = [ch.choices[0].text for ch in c.completions.create(model="tiny-mdm", prompt=prompt, suffix=suffix,
                                                                 max_tokens=8, stream=True) if ch.choices]
    assert "".join(pieces) == want


def test_infilling_requests_batch_with_each_other(mdm_server, make_client, alone):
    c = make_client(mdm_server)
    model, tok = mdm_server.worker.model, mdm_server.worker.tokenizer
    sfx = "\n    return y\n"  # rows share a batch when their suffixes have the same length (the canvas layout)
    cases = [("def f(x):\n    y = ", sfx), ("def g(a, b):\n    y = ", sfx),
             ("import os\nimport sys\n\ndef h(x):\n    y = ", sfx), ("def k(s):\n    y = s.", sfx)]
    extra = dict(block_len=4, steps=8, cache="dual", alg="low_confidence")
    results = [None] * len(cases)
    barrier = threading.Barrier(len(cases))

    def send(i):
        barrier.wait()
        p, s = cases[i]
        results[i] = c.completions.create(model="tiny-mdm", prompt=p, suffix=s, max_tokens=8, extra_body=extra)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(cases))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    for (p, s), r in zip(cases, results):
        want = alone(model, tok, tok(p).input_ids, max_tokens=8, suffix_ids=tok(s, add_special_tokens=False).input_ids,
                     **extra)[0]
        assert r.choices[0].text == want
    assert max(r.model_extra["diffucode"]["batch_rows"] for r in results) >= 3


def test_a_request_joins_a_running_batch_and_is_answered_first(block_server, make_client, alone):
    """Continuous batching: a short request sent while a long one is decoding joins its batch at the
    next block and is answered long before the long one ends (gather-then-decode would make it
    wait for the whole long decode); both answers equal one-by-one decoding."""
    import json
    import time
    import urllib.request

    c = make_client(block_server)
    model, tok = block_server.worker.model, block_server.worker.tokenizer
    long_p, short_p = "def f(x):\n", "import os\n"
    done = {}

    def send_long():
        done["long"] = c.completions.create(model="tiny-block", prompt=long_p, max_tokens=200)
        done["long_t"] = time.monotonic()

    th = threading.Thread(target=send_long)
    th.start()
    health = block_server.base_url.rsplit("/v1", 1)[0] + "/health"
    deadline = time.monotonic() + 60
    while True:  # until the long request has left the queue: it is being decoded
        h = json.loads(urllib.request.urlopen(health).read())
        if h["batches"] >= 1 and h["queued"] == 0:
            break
        assert time.monotonic() < deadline
        time.sleep(0.005)
    short = c.completions.create(model="tiny-block", prompt=short_p, max_tokens=4)
    short_t = time.monotonic()
    th.join(300)
    assert "long" in done and done["long"].choices[0].finish_reason == "length"  # it really ran its 200 tokens
    assert short_t < done["long_t"]  # answered before the long request ended
    assert short.model_extra["diffucode"]["batch_rows"] == 2  # decoded in the long one's batch
    assert short.choices[0].text == alone(model, tok, tok(short_p).input_ids, max_tokens=4)[0]
    assert done["long"].choices[0].text == alone(model, tok, tok(long_p).input_ids, max_tokens=200)[0]
