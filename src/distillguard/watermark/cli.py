"""``distillguard watermark``: keys, detection on text, the suspect-model test."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from distillguard.errors import ConfigError

watermark_app = typer.Typer(no_args_is_help=True, help="Watermark outputs, detect the watermark in text, test a suspect model.")
keys_app = typer.Typer(no_args_is_help=True, help="Create, rotate and list watermark keys.")
watermark_app.add_typer(keys_app, name="keys")
out = Console()

StoreOpt = Annotated[Path, typer.Option("--store", help="Key store JSON (holds the master secret).")]
TokOpt = Annotated[Path | None, typer.Option("--tokenizer", help="tokenizer.json of the served model (green-list scheme).")]
GammaOpt = Annotated[float, typer.Option(help="Green fraction the watermark was made with.")]
WidthOpt = Annotated[int, typer.Option("--context-width", help="Context tokens that seed the green list.")]
SchemeOpt = Annotated[str, typer.Option(help="greenlist (token level) or lexical (text level).")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the result JSON here.")]


@keys_app.command("init")
def keys_init(store: StoreOpt, force: Annotated[bool, typer.Option(help="Overwrite an existing store.")] = False) -> None:
    """Create a key store with a fresh master secret and epoch 0."""
    from distillguard.watermark.keys import KeyStore

    if store.exists() and not force:
        raise ConfigError(f"key store {store} exists; pass --force to overwrite it (old outputs become undetectable)")
    KeyStore.generate().save(store)
    out.print(f"created {store} (epoch 0); keep it secret")


@keys_app.command("rotate")
def keys_rotate(store: StoreOpt) -> None:
    """Retire the current epoch and start the next; old epochs stay for detection."""
    from distillguard.watermark.keys import KeyStore

    ks = KeyStore.load(store)
    key = ks.rotate()
    ks.save(store)
    out.print(f"now signing with {key.key_id}")


@keys_app.command("list")
def keys_list(store: StoreOpt) -> None:
    """Epochs and cluster keys that detection tries (never the secrets)."""
    from distillguard.watermark.keys import KeyStore

    ks = KeyStore.load(store)
    for e in ks.epochs:
        state = "signing" if e.retired is None else "retired"
        out.print(f"e{e.number}  {state}  clusters: {', '.join(e.clusters) or '-'}")


def _tokenizer(path: Path | None) -> Any:
    if path is None:
        raise ConfigError("the greenlist scheme needs --tokenizer (the served model's tokenizer.json)")
    from distillguard.watermark._deps import require

    return require("tokenizers").Tokenizer.from_file(str(path))


def _read(paths: list[Path]) -> list[tuple[str, str]]:
    if not paths or paths == [Path("-")]:
        return [("<stdin>", sys.stdin.read())]
    return [(str(p), p.read_text()) for p in paths]


@watermark_app.command("detect")
def detect(
    texts: Annotated[list[Path], typer.Argument(help="Text files to test ('-' or nothing: standard input).")] = [],  # noqa: B006
    store: StoreOpt = Path("watermark-keys.json"),
    tokenizer: TokOpt = None,
    scheme: SchemeOpt = "greenlist",
    gamma: GammaOpt = 0.25,
    context_width: WidthOpt = 1,
    alpha: Annotated[float, typer.Option(help="Significance level of the verdict.")] = 1e-3,
    json_out: JsonOpt = None,
) -> None:
    """Test text for our watermark: z, p-value and scored tokens, against every key in the store."""
    from distillguard.watermark.detect import best_of, detect_ids
    from distillguard.watermark.greenlist import GreenList
    from distillguard.watermark.keys import KeyStore
    from distillguard.watermark.lexical import LexicalWatermark

    ks = KeyStore.load(store)
    keys = ks.all_keys()
    results: list[dict[str, Any]] = []
    tok = _tokenizer(tokenizer) if scheme == "greenlist" else None
    for name, text in _read(texts):
        if tok is not None:
            ids = tok.encode(text).ids
            d = best_of([detect_ids(ids, GreenList(k, gamma, context_width)) for k in keys])
            verdict, row = d.verdict(alpha), d.to_dict()
        elif scheme == "lexical":
            lds = [LexicalWatermark(k).detect(text) for k in keys]
            best = min(lds, key=lambda x: x.p_value)
            ld = replace(best, p_value=min(1.0, best.p_value * len(lds)))  # Bonferroni over keys
            row = {**ld.to_dict(), "keys_tried": len(lds)}
            verdict = ld.verdict(alpha)
        else:
            raise ConfigError(f"unknown scheme {scheme!r}; use greenlist or lexical")
        row |= {"file": name, "verdict": verdict}
        results.append(row)
        scored = row.get("scored_tokens", row.get("scored"))
        out.print(f"{name}: z = {row['z']:.2f}, p = {row['p_value']:.3g}, scored tokens = {scored}, "
                  f"keys tried = {row['keys_tried']}\n  {verdict}")
    if json_out is not None:
        json_out.write_text(json.dumps(results, indent=2))


@watermark_app.command("mark-text")
def mark_text(
    text: Annotated[Path, typer.Argument(help="Text file to mark ('-' for standard input).")],
    store: StoreOpt = Path("watermark-keys.json"),
    risk: Annotated[float, typer.Option(help="The account's risk in [0, 1].")] = 1.0,
    min_risk: Annotated[float, typer.Option(help="Mark only at or above this risk.")] = 0.5,
    cluster: Annotated[str | None, typer.Option(help="Account cluster: its own key, so a leak names it.")] = None,
) -> None:
    """Apply the text-level (lexical) watermark by policy and print the result."""
    from distillguard.watermark.keys import KeyStore
    from distillguard.watermark.lexical import LexicalPolicy, LexicalWatermark

    ks = KeyStore.load(store)
    key = ks.current(cluster)
    if cluster is not None:
        ks.save(store)  # the cluster is now registered for detection
    body = _read([text])[0][1]
    sys.stdout.write(LexicalPolicy(min_risk).apply(LexicalWatermark(key), body, risk))


@watermark_app.command("suspect")
def suspect(
    endpoint: Annotated[str, typer.Option(help="OpenAI-compatible base URL of the suspect, e.g. http://host/v1.")],
    model: Annotated[str, typer.Option(help="Model name to send.")],
    prompts: Annotated[Path, typer.Option(help="Prompts, one per line.")],
    store: StoreOpt = Path("watermark-keys.json"),
    tokenizer: TokOpt = None,
    gamma: GammaOpt = 0.25,
    context_width: WidthOpt = 1,
    epoch: Annotated[int | None, typer.Option(help="Test one epoch's key (default: the current one).")] = None,
    max_queries: Annotated[int, typer.Option(help="Stop after this many queries.")] = 1000,
    target_p: Annotated[float, typer.Option(help="Stop once the p-value is below this.")] = 1e-6,
    max_tokens: Annotated[int, typer.Option(help="max_tokens of each query.")] = 256,
    api_key_env: Annotated[str, typer.Option(help="Environment variable holding the API key.")] = "SUSPECT_API_KEY",
    json_out: JsonOpt = None,
) -> None:
    """Query a suspect model and test its outputs for our watermark (radioactivity)."""
    import os

    from distillguard.watermark.greenlist import GreenList
    from distillguard.watermark.keys import KeyStore
    from distillguard.watermark.suspect import OpenAIEndpoint, suspect_test, text_outputs

    ks = KeyStore.load(store)
    key = ks.current() if epoch is None else ks.key(epoch)
    tok = _tokenizer(tokenizer)
    lines = [ln.strip() for ln in prompts.read_text().splitlines() if ln.strip()][:max_queries]
    api = OpenAIEndpoint(endpoint, model, os.environ.get(api_key_env), max_tokens)
    report = suspect_test(text_outputs(api, lines, lambda t: tok.encode(t).ids), GreenList(key, gamma, context_width),
                          target_p, max_queries)
    d = report.to_dict()
    out.print(f"queries = {report.queries}, scored tokens = {d['scored_tokens']}, z = {d['z']:.2f}, p = {d['p_value']:.3g}")
    out.print(report.verdict())
    if json_out is not None:
        json_out.write_text(json.dumps(d, indent=2))
