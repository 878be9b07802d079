"""Downstream tasks built from held-out documents, run with lm-evaluation-harness on the exported model.

Two multiple-choice kinds per domain (and for general text), from the documents of the test split only (never
trained on; tasks/tokenize/decontam.py removes training documents that overlap them):

- `keel_<domain>_continuation`: a passage of a held-out document; which of four spans continues it (the true
  next words, or spans of the same length from other held-out documents of that domain)?
- `keel_<domain>_name`: the description part of a held-out document whose first line is a name (a weakness, a
  technique, a section title); which of four names does it describe (the others: names of other documents)?

Items are plain JSONL (`context`, `choices`, `label`, `doc_id`); each task is an lm-eval YAML (`output_type:
multiple_choice`, metric `acc`, with its standard error) pointing at its local JSONL. Nothing is downloaded.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

CONTEXT_WORDS = 48
SPAN_WORDS = 12
CHOICES = 4
NAME_MAX_WORDS = 16
NAME_MAX_CHARS = 120
DESCRIPTION_WORDS = 40


@dataclass(frozen=True)
class HeldoutDoc:
    doc_id: str
    domain: str
    text: str


@dataclass(frozen=True)
class TaskSet:
    name: str
    domain: str
    kind: str
    """'continuation' or 'name'."""
    items: int
    path: str
    """Output-root-relative path of the items (JSONL)."""
    sha256: str


def task_name(domain: str, kind: str) -> str:
    return "keel_" + re.sub(r"[^a-z0-9]+", "_", domain.lower()).strip("_") + "_" + kind


def _shuffle_choices(gold: str, others: list[str], rng: random.Random) -> tuple[list[str], int]:
    choices = [gold, *others]
    rng.shuffle(choices)
    return choices, choices.index(gold)


def continuation_items(docs: list[HeldoutDoc], max_items: int, seed: int) -> list[dict]:
    """Which span continues the passage: up to one item per 200 words of each document, `max_items` in all."""
    rng = random.Random(seed)
    words = {d.doc_id: d.text.split() for d in docs}
    need = CONTEXT_WORDS + SPAN_WORDS
    usable = [d for d in docs if len(words[d.doc_id]) >= need]
    if len(usable) < CHOICES:  # distractors come from other documents
        return []
    candidates = []
    for d in usable:
        w = words[d.doc_id]
        for _ in range(max(1, len(w) // 200)):
            candidates.append((d, rng.randrange(CONTEXT_WORDS, len(w) - SPAN_WORDS + 1)))
    rng.shuffle(candidates)
    items = []
    for d, at in candidates[:max_items]:
        w = words[d.doc_id]
        gold = " ".join(w[at:at + SPAN_WORDS])
        others, sources = [], [d.doc_id]
        for o in rng.sample([x for x in usable if x.doc_id != d.doc_id], CHOICES - 1):
            ow = words[o.doc_id]
            s = rng.randrange(0, len(ow) - SPAN_WORDS + 1)
            others.append(" ".join(ow[s:s + SPAN_WORDS]))
            sources.append(o.doc_id)
        if len({gold, *others}) < CHOICES:
            continue
        choices, label = _shuffle_choices(gold, others, rng)
        items.append({"context": " ".join(w[at - CONTEXT_WORDS:at]), "choices": choices, "label": label,
                      "doc_id": d.doc_id, "sources": sources})
    return items


def _name_and_description(text: str) -> tuple[str, str] | None:
    first, _, rest = text.strip().partition("\n")
    name = first.strip().lstrip("#").strip()
    body = rest.split()
    if not name or len(name) > NAME_MAX_CHARS or not 2 <= len(name.split()) <= NAME_MAX_WORDS or len(body) < 20:
        return None
    return name, " ".join(body[:DESCRIPTION_WORDS])


def name_items(docs: list[HeldoutDoc], max_items: int, seed: int) -> list[dict]:
    """Which name does the description belong to; only documents whose first line reads as a name."""
    rng = random.Random(seed + 1)
    pairs = [(d, nd) for d in docs if (nd := _name_and_description(d.text))]
    names = sorted({nd[0] for _, nd in pairs})
    named_by = {}
    for d, (name, _) in pairs:
        named_by.setdefault(name, d.doc_id)
    if len(names) < CHOICES:
        return []
    rng.shuffle(pairs)
    items = []
    for d, (name, description) in pairs[:max_items]:
        others = rng.sample([n for n in names if n != name], CHOICES - 1)
        choices, label = _shuffle_choices(name, others, rng)
        items.append({"context": f"{description}\nName:", "choices": choices, "label": label, "doc_id": d.doc_id,
                      "sources": [d.doc_id, *(named_by[n] for n in others)]})
    return items


def build_tasks(docs: list[HeldoutDoc], max_items: int, seed: int) -> dict[str, tuple[str, str, list[dict]]]:
    """task name -> (domain, kind, items) for every domain of the held-out documents that yields items."""
    docs = sorted(docs, key=lambda d: d.doc_id)
    out = {}
    for domain in sorted({d.domain for d in docs}):
        mine = [d for d in docs if d.domain == domain]
        for kind, make in (("continuation", continuation_items), ("name", name_items)):
            items = make(mine, max_items, seed)
            if items:
                out[task_name(domain, kind)] = (domain, kind, items)
    return out


def item_texts(items: list[dict]) -> list[str]:
    """What of an item a model could have memorised: the context and the right answer."""
    return [f"{it['context']} {it['choices'][it['label']]}" for it in items]


def write_jsonl(items: list[dict]) -> bytes:
    return "".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items).encode()


def task_yaml(name: str, jsonl: str) -> str:
    """The lm-eval task definition for a local JSONL of items (an absolute path)."""
    return "\n".join([
        f"task: {name}",
        "dataset_path: json",
        "dataset_kwargs:",
        "  data_files:",
        f"    test: {json.dumps(str(jsonl))}",
        "test_split: test",
        "output_type: multiple_choice",
        'doc_to_text: "{{context}}"',
        'doc_to_choice: "{{choices}}"',
        "doc_to_target: label",
        "metric_list:",
        "  - metric: acc",
        "    aggregation: mean",
        "    higher_is_better: true",
        ""])


def write_task_folder(tasks: dict[str, str], folder: str | Path) -> Path:
    """`tasks`: name -> local JSONL path. Writes one YAML per task into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, jsonl in tasks.items():
        (folder / f"{name}.yaml").write_text(task_yaml(name, str(Path(jsonl).resolve())))
    return folder
