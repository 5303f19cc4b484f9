"""An OpenAI-compatible HTTP server for diffusion code models (``diffucode serve``).

    diffucode serve --model path/to/checkpoint --port 8000      # then, from any OpenAI client:
    python -c "from openai import OpenAI; c = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='-');
    print(c.completions.create(model='diffucoder-nano', prompt='def add(a, b):\\n', max_tokens=16).choices[0].text)"

Modules, each with one job:

* ``protocol``: the request bodies (pydantic, unknown fields refused), OpenAI error objects and
  the status codes the server answers with; imports no torch.
* ``textstream``: turning the ids a row has committed so far into text deltas (end tokens, stop
  strings, half-decoded UTF-8), shared by streaming and non-streaming answers.
* ``worker``: the one thread that owns the model: loads it, groups queued requests with
  compatible settings into batches (micro-batching within a short window, bounded queue) and
  decodes them with :func:`diffucode.sampling.generate`.
* ``app``: the FastAPI routes (``/v1/completions``, ``/v1/chat/completions``, ``/v1/models``,
  ``/health``), validation against the model, server-sent events.
* ``server``: running the app under uvicorn, in the foreground or in a thread (tests, benchmark).

Nothing here is imported by the rest of the package; ``recipes/serve.py`` wires it to the CLI.
"""
