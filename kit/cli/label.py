"""``kit label TASK``: label a random sample of a task's test items in the terminal, or move labels in and out.

    kit label snips-intents --size 50            # draw (or extend) the sample, then label it here
    kit label snips-intents                      # go on where you stopped
    kit label snips-intents --undo               # take back your last label
    kit label snips-intents --export labels.csv  # label elsewhere, then --import labels.csv
    kit label snips-intents --status             # how far the labelling is
    kit label snips-intents --queue disagreements  # read the items the options answered differently
    kit label snips-intents --design stratified --size 40  # once the options answered: label where they disagree
    kit label snips-intents --reference standin --candidate llama_cpp:smol   # ...and stop once the verdict is settled
    kit label snips-intents --experiment notebooks/params/default.yaml       # the same, the experiment's questions

Interactively each item shows its text and the numbered labels; answer with a number or a label's name,
``s`` to skip, ``u`` to undo your last label, ``q`` to stop (end of input stops too).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from collections.abc import Callable
from typing import TextIO

from kit.cli.common import whole
from kit.columns import Col
from kit.labels.book import DEFAULT_SEED, LABELLER_ENV, LabelBook, Queue, Source, default_who
from kit.labels.design import Design
from kit.tasks.ppi_compare import MIN_LABELS

QUIT, SKIP, UNDO = "q", "s", "u"
YES = ("y", "yes")  # takes the label a "did you mean" offered
DEFAULT_MARGIN, DEFAULT_ALPHA = 0.02, 0.05   # the experiment's defaults (kit.experiment.Parameters)


def cmd_label(args: argparse.Namespace) -> int:
    from kit.errors import ConfigError
    from kit.labels.files import export_labels, import_labels
    from kit.paths import default_store
    from kit.run.store import Store
    from kit.tasks import load_task

    if args.seed is not None and args.size is None:
        raise ConfigError("--seed is recorded when the sample is drawn", where="kit label",
                          fix="pass it with --size N (the first draw), or leave it out")
    if args.design is not None and args.size is None:
        raise ConfigError("--design says how a sample is drawn", where="kit label",
                          fix=f"pass it with --size N, e.g. kit label {args.task} --design {args.design} --size 40")
    task = load_task(args.task)
    who = args.who or default_who()
    with Store(args.store or default_store()) as store:
        book = LabelBook(store, task)
        if args.size is not None:
            _draw(book, Design(args.design) if args.design else None, args.size, seed=args.seed)
        if args.import_file:
            done = import_labels(book, Path(args.import_file), who=who, overwrite=not args.no_overwrite)
            replaced = "; ".join(f"replaced {n} labels given by {by}" for by, n in sorted(done.replaced.items()))
            print(f"imported {args.import_file}: {done.added} labels added, {done.unchanged} unchanged, "
                  f"{done.blank} rows without a label left out"
                  + (f"; {replaced}" if replaced else "")
                  + (f"; {done.kept} items labelled differently by someone else kept their label (--no-overwrite)"
                     if done.kept else "")
                  + (f"; {done.outside} lie outside the sample (kept, not used by the estimates)"
                     if done.outside else ""))
        if args.undo:
            undone = book.undo(who=who)
            print(f"undone: {_said(undone.label)} for {undone.item_id} (given {undone.at})" if undone
                  else f"{who} has no label on {task.name} to undo")
        if args.export_file:
            rows = export_labels(book, Path(args.export_file))
            print(f"exported {rows} rows to {args.export_file}")
        until = _until(args, book)
        if args.import_file or args.undo or args.export_file or args.status:
            print(f"{task.name}: {book.progress()}")
            if args.status:
                _print_design(book)
            if until is not None:  # an imported file: the same question, asked once
                for line in until():
                    print(line)
            return 0
        queue = Queue(args.queue)
        if queue is Queue.SAMPLE and book.sample() is None:
            raise ConfigError(f"no sample of {task.name} is drawn yet", where=store.path,
                              fix=f"draw one: kit label {args.task} --size 50")
        label_interactively(book, who=who, read=sys.stdin, write=sys.stdout, queue=queue, until=until)
    return 0


Until = Callable[[], list[str]]


def _until(args: argparse.Namespace, book: LabelBook) -> Until | None:
    """The open questions to settle after every label (None: none asked). From ``--experiment`` (its reference,
    candidates, margin and alpha; an option is found in the store by its name or its arm) or the flags; only on
    a stratified design. The callable returns the lines that say where each question stands, the first starting
    with ``settled:`` once every question is settled."""
    from kit.errors import ConfigError
    from kit.experiment import read_experiment_file
    from kit.labels.until import all_settled, settler

    names: dict[str, str] = {}
    reference, candidates = args.reference, list(args.candidate or ())
    margin, alpha = args.margin, args.alpha
    if args.experiment:
        spec = read_experiment_file(args.experiment)
        options = [o for o in spec.get("options", []) if isinstance(o, dict) and o.get("name")]
        names = {str(o.get("arm") or o["name"]): str(o["name"]) for o in options}
        reference = reference or spec.get("reference")
        candidates = candidates or [str(o["name"]) for o in options if o["name"] != reference]
        margin = spec.get("margin", DEFAULT_MARGIN) if margin is None else margin
        alpha = spec.get("alpha", DEFAULT_ALPHA) if alpha is None else alpha
    if reference is None and not candidates:
        return None
    if reference is None or not candidates:
        raise ConfigError("a question to settle needs a reference and at least one candidate", where="kit label",
                          fix="pass --reference ARM --candidate ARM, or --experiment FILE")
    ask = settler(book.store, book.task, reference=str(reference), candidates=[str(c) for c in candidates],
                  margin=DEFAULT_MARGIN if margin is None else float(margin),
                  alpha=DEFAULT_ALPHA if alpha is None else float(alpha), names=names,
                  skip_unknown=bool(args.experiment) and not args.candidate)

    def now() -> list[str]:
        found = ask()
        lines = [s.sentence for s in found]
        return (["settled: every open question is answered; no more labels are needed", *lines]
                if all_settled(found) else lines)

    return now


def _draw(book: LabelBook, design: Design | None, size: int, *, seed: int | None) -> None:
    """Draw or extend the sample (``design`` None: the task's active design, random for a first draw) and say
    what happened — a smaller size than drawn changes nothing, and says so."""
    from kit.labels.design import draw_stratified

    task = book.task
    before = book.sample()
    design = design or (before.design if before is not None else Design.RANDOM)
    if design is Design.STRATIFIED:
        drawn = draw_stratified(book.store, task, size, seed=DEFAULT_SEED if seed is None else seed)
        if drawn.new and before is not None and before.design is Design.STRATIFIED:
            print(f"the stored answers changed since design {before.design_id} was drawn: drew design "
                  f"{drawn.design.id} with the new strata; the earlier design's labels stay valid and are combined")
        sample = book.sample()
    else:
        sample = book.draw(size, seed=seed)
    assert sample is not None
    if before is not None and before.design == sample.design and len(before.order) >= size:
        print(f"the sample already holds {len(before.order)} items, so --size {size} changes nothing (a sample "
              f"only grows: its first {size} items are labelled first)")
    kind = "" if sample.design is Design.RANDOM else f" ({sample.design})"
    print(f"sample{kind}: {len(sample.order)} of {len(task.test)} test items of {task.name} "
          f"(seed {sample.seed})")
    if design is Design.STRATIFIED:
        _print_design(book)


def _print_design(book: LabelBook) -> None:
    from kit.labels import sampled_labels

    labels = sampled_labels(book.store, book.task)
    if not labels.order:
        return
    for r in labels.stratum_table().to_dict("records") if labels.design != Design.RANDOM else ():
        print(f"  {r[Col.STRATUM]}: {r[Col.STRATUM_SIZE]} items, {r[Col.DRAWN]} drawn, {r[Col.N_LABELLED]} labels used")
    if not labels.measured:
        print(f"  {len(labels.gold)} labels used: below {MIN_LABELS}, no estimate is shown as a measurement yet")


def label_interactively(book: LabelBook, *, who: str, read: TextIO, write: TextIO,
                        queue: Queue = Queue.SAMPLE, until: Until | None = None) -> None:
    """Present the next unlabelled item of ``queue`` until none is left, ``q`` or the end of ``read`` — or, with
    ``until`` (the open questions), until every question is settled: it is asked after every label."""
    def say(text: str = "") -> None:
        write.write(text + "\n")
        write.flush()

    labels = book.labels
    source = Source.CLI if queue is Queue.SAMPLE else Source.QUEUE
    say(f"{book.task.name}: {book.progress()} · labelling as {who} · a number or a label, "
        f"{SKIP} skip, {UNDO} undo, {QUIT} quit")
    if queue is Queue.DISAGREEMENTS:
        say("disagreements first: for reading — labels outside the random sample never enter the estimates")

    def settled() -> bool:
        if until is None or queue is not Queue.SAMPLE:
            return False
        lines = until()
        for line in lines:
            say(line)
        return bool(lines) and lines[0].startswith("settled:")

    if settled():
        return
    while True:
        item = book.next_item(queue)
        if item is None:
            progress = book.progress()
            say(f"every item of the sample is labelled or skipped: {progress}" if queue is Queue.SAMPLE
                else "no disagreement left unlabelled")
            if queue is Queue.SAMPLE and progress.skipped:
                say(f"skipped items stay unlabelled (`{UNDO}` or an import brings them back)")
            return
        position = book.position(item.id)
        where = f"{position} / {book.progress().size}" if position else "outside the sample"
        say(f"\n[{where}] {item.id}")
        say(item.text)
        say("  ".join(f"{n}) {label}" for n, label in enumerate(labels, start=1)))
        suggested: str | None = None  # the label a "did you mean" offered: `y` takes it
        while True:
            write.write("> ")
            write.flush()
            line = read.readline()
            if not line:
                say("\nstopped at the end of input; run again to go on")
                return
            answer = line.strip()
            if answer == QUIT:
                say(f"stopped: {book.progress()}; run again to go on")
                return
            if answer == SKIP:
                book.skip(item.id, who=who, source=source)
                say(f"skipped {item.id}")
                break
            if answer == UNDO:
                undone = book.undo(who=who)
                say(f"undone: {_said(undone.label)} for {undone.item_id}" if undone else "nothing of yours to undo")
                break
            if suggested is not None and answer.casefold() in YES and answer not in labels:
                answer = suggested
            label = labels[int(answer) - 1] if answer.isdigit() and 1 <= int(answer) <= len(labels) else answer
            problem = book.label_problem(label)
            if problem:
                suggested = book.nearest_label(label)
                say(f"{problem}; type {'y to take it, ' if suggested else ''}1-{len(labels)}, a label, {SKIP}, "
                    f"{UNDO} or {QUIT}")
                continue
            book.give(item.id, label, who=who, source=source)
            answers = book.answers(item.id)
            shown = "; ".join(f"{arm} → {value}" for arm, value in answers.items())
            say(f"{item.id} → {label}" + (f"   (the options answered: {shown})" if shown else ""))
            break
        if until is not None and queue is Queue.SAMPLE and settled():
            return


def _said(label: str | None) -> str:
    return "the skip" if label is None else f"'{label}'"


def register_cli(sub: argparse._SubParsersAction) -> None:
    """Add ``kit label TASK`` to the kit's argument parser."""
    p = sub.add_parser("label", help="label a random sample of a task's test items (resumable, undoable)",
                       description="Label a uniformly random, seeded, recorded sample of a task's test items: "
                                   "in the terminal, or by exporting and importing a CSV/JSONL file.")
    p.add_argument("task", help="task name (see `kit tasks`) or path of a task YAML")
    p.add_argument("--store", help="SQLite store (default runs/kit.sqlite)")
    p.add_argument("--who", help=f"who labels (default ${LABELLER_ENV}, else your user name)")
    p.add_argument("--size", type=whole(1, meaning="items in the sample"),
                   help="draw the sample, or extend it to N items (earlier items keep their places)")
    p.add_argument("--seed", type=whole(0, meaning="the sample's random seed"),
                   help=f"seed of the first draw (recorded; default {DEFAULT_SEED}, the same in every store)")
    p.add_argument("--import", dest="import_file", metavar="FILE",
                   help="import labels from a CSV or JSONL file with columns id,label[,who]")
    p.add_argument("--export", dest="export_file", metavar="FILE",
                   help="export the sample and its labels to a CSV or JSONL file")
    p.add_argument("--design", choices=[str(d) for d in Design],
                   help="with --size: random (a uniformly random sample; the default) or stratified (strata from the "
                        "options' stored answers, labels spent where they disagree; needs the answers of 2+ options)")
    p.add_argument("--no-overwrite", action="store_true",
                   help="with --import: keep labels someone else gave that the file would change")
    p.add_argument("--undo", action="store_true", help="undo your last label (or skip) on the task")
    p.add_argument("--status", action="store_true", help="only say how far the labelling is")
    p.add_argument("--queue", choices=[str(q) for q in Queue], default=str(Queue.SAMPLE),
                   help="sample: the random sample, in order (default; what the estimates use); disagreements: "
                        "items the options answered differently, for reading (not used by the estimates)")
    p.add_argument("--experiment", metavar="FILE",
                   help="label until settled: its reference, candidates, margin and alpha are the open questions")
    p.add_argument("--reference", help="label until settled: the option (arm) every candidate is tested against")
    p.add_argument("--candidate", action="append", help="label until settled: a candidate option (repeatable)")
    p.add_argument("--margin", type=float, help=f"the non-inferiority margin as a share (default {DEFAULT_MARGIN})")
    p.add_argument("--alpha", type=float, help=f"the error rate of a settled verdict (default {DEFAULT_ALPHA})")
    p.set_defaults(func=cmd_label)
