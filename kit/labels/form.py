"""The labelling form for JupyterLab (ipywidgets): the sample's next item, one button per label, Skip, Undo
and the progress — writing through the same :class:`~kit.labels.book.LabelBook` as ``kit label``.

After an item is labelled the form shows what the options answered for it (from the store) — never before,
so the answers do not sway the label. The form picks up where any earlier session, form or terminal,
stopped.

>>> form = label_form("snips-intents", size=50, who="ana")   # doctest: +SKIP
>>> form                                                      # doctest: +SKIP
"""

from __future__ import annotations

import html
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kit.errors import ConfigError, KitError, MissingDependency
from kit.labels.book import LabelBook, Source, check_who, default_who
from kit.labels.until import Standing, all_settled, settler
from kit.run.store import Store
from kit.tasks.loading import Task, load_task


def _widgets() -> Any:
    try:
        import ipywidgets
    except ImportError:
        raise MissingDependency("ipywidgets", purpose="for the labelling form") from None
    return ipywidgets


class LabelForm:
    """The form's widgets over one label book; displayed as its :attr:`widget` (a VBox).

    ``header`` says which item of the sample this is, ``text`` shows it, ``buttons`` give its label (one per
    label of the task), ``skip_button`` and ``undo_button`` skip it or take back the last label,
    ``progress`` counts the labelled items, ``answers`` shows the options' answers for the item just
    labelled and ``message`` what went wrong, if anything.
    """

    def __init__(self, book: LabelBook, *, who: str, until: Callable[[], list[Standing]] | None = None) -> None:
        w = _widgets()
        self.book = book
        self.until = until
        self.settle = w.HTML()
        self.who = check_who(who)
        self.header = w.HTML()
        self.text = w.HTML(layout=w.Layout(border="1px solid #ccc", padding="0.5em"))
        self.buttons = tuple(w.Button(description=label, tooltip=f"label this item '{label}'")
                             for label in book.labels)
        for button, label in zip(self.buttons, book.labels):
            button.on_click(lambda _, label=label: self._act(lambda: self._give(label)))
        self.skip_button = w.Button(description="Skip", tooltip="leave this item unlabelled (biases the estimate "
                                                                "when done on purpose)")
        self.undo_button = w.Button(description="Undo", tooltip="take back your last label")
        self.skip_button.on_click(lambda _: self._act(self._skip))
        self.undo_button.on_click(lambda _: self._act(self._undo))
        self.progress = w.HTML()
        self.answers = w.HTML()
        self.message = w.HTML()
        self.widget = w.VBox([self.header, self.text, w.HBox(list(self.buttons)),
                              w.HBox([self.skip_button, self.undo_button]), self.progress, self.settle,
                              self.answers, self.message])
        self._show()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def _act(self, action: Any) -> None:
        """Run a button's action; a kit error is shown in the form, not as a traceback."""
        self.message.value = ""
        try:
            action()
        except KitError as exc:
            self.message.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
        self._show()

    def _give(self, label: str) -> None:
        item = self.book.next_item()
        if item is None:
            return
        self.book.give(item.id, label, who=self.who, source=Source.FORM)
        answered = self.book.answers(item.id)
        shown = ", ".join(f"{html.escape(arm)} → <b>{html.escape(str(value))}</b>" for arm, value in answered.items())
        self.answers.value = (f"{html.escape(item.id)} labelled <b>{html.escape(label)}</b>"
                              + (f"; the options answered: {shown}" if shown else ""))

    def _skip(self) -> None:
        item = self.book.next_item()
        if item is not None:
            self.book.skip(item.id, who=self.who, source=Source.FORM)
            self.answers.value = f"{html.escape(item.id)} skipped"

    def _undo(self) -> None:
        undone = self.book.undo(who=self.who)
        what = "nothing of yours to undo" if undone is None else (
            f"undone: {'the skip' if undone.label is None else html.escape(repr(undone.label))} for "
            f"{html.escape(undone.item_id)}")
        self.answers.value = what

    def _show(self) -> None:
        item, progress = self.book.next_item(), self.book.progress()
        self.progress.value = html.escape(str(progress))
        now = self.until() if self.until is not None else []
        done = all_settled(now)
        self.settle.value = "<br>".join(html.escape(s.sentence) for s in now)
        for button in (*self.buttons, self.skip_button):
            button.disabled = item is None or done
        if done:
            self.header.value = "<b>Settled: every open question is answered; no more labels are needed.</b>"
            self.text.value = ""
            return
        if item is None:
            self.header.value = "<b>Every item of the sample is labelled or skipped.</b>"
            self.text.value = ""
            return
        self.header.value = (f"<b>Item {self.book.position(item.id)} of {progress.size}</b> · "
                             f"<code>{html.escape(item.id)}</code> · labelling as {html.escape(self.who)}")
        self.text.value = f"<div style='white-space:pre-wrap'>{html.escape(item.text)}</div>"


def label_form(task: str | Path | Task, *, store: str | Path | Store = "", who: str = "",
               size: int | None = None, seed: int | None = None, design: str = "", reference: str = "",
               candidates: Sequence[str] = (), margin: float = 0.02, alpha: float = 0.05,
               names: Mapping[str, str] | None = None) -> LabelForm:
    """The form for ``task`` (a name, a YAML path or a loaded task) in ``store`` (default runs/kit.sqlite),
    drawing or extending the sample to ``size`` items first — ``design`` ``"stratified"`` draws where the
    options' stored answers disagree (:mod:`kit.labels.design`); empty keeps the task's design (random for a
    first draw). ``who`` defaults to ``$KIT_LABELLER`` or the user name. The store stays open while the form is
    used. With ``reference`` and ``candidates`` (on a stratified design) the form labels until settled: after every
    label it re-tests each candidate against the reference at ``margin`` (:mod:`kit.labels.until`) and stops
    asking once every verdict is settled; ``names`` maps stored arms to the experiment's option names."""
    from kit.labels.book import DEFAULT_SEED
    from kit.labels.design import Design, draw_stratified
    from kit.paths import default_store

    loaded = task if isinstance(task, Task) else load_task(task)
    opened = store if isinstance(store, Store) else Store(store or default_store())
    book = LabelBook(opened, loaded)
    drawn = book.sample()
    try:
        chosen = Design(design) if design else (drawn.design if drawn is not None else Design.RANDOM)
    except ValueError:
        raise ConfigError(f"unknown design {design!r}", fix="set design to 'random' or 'stratified'") from None
    if size and chosen is Design.STRATIFIED:
        draw_stratified(opened, loaded, int(size), seed=DEFAULT_SEED if seed is None else seed)
    elif size:
        book.draw(int(size), seed=seed)
    elif book.sample() is None:
        raise ConfigError(f"no sample of {loaded.name} is drawn yet", where=opened.path,
                          fix="set size (e.g. size = 50) to draw one")
    if bool(reference) != bool(candidates):
        raise ConfigError("a question to settle needs a reference and at least one candidate",
                          fix="set both reference and candidates, or neither")
    until = (settler(opened, loaded, reference=reference, candidates=list(candidates), margin=margin, alpha=alpha,
                     names=names, skip_unknown=names is not None) if reference else None)
    return LabelForm(book, who=who or default_who(), until=until)
