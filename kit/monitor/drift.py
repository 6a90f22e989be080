"""Input drift: has this window's traffic moved away from the first window's?

Two tests, each of the texts alone (no answers, no labels needed):

* **Text length** — the Mann–Whitney U test of the two windows' lengths in characters (two-sided): longer or
  shorter requests (a new channel, pasted e-mails) show here first.
* **A classifier two-sample test** (Lopez-Paz & Oquab, "Revisiting classifier two-sample tests", ICLR 2017):
  label the first window's texts 0 and this window's 1, train a classifier on half of each, and count how often
  it tells the held-out halves apart. If the two windows come from one distribution, no classifier beats a coin
  on held-out texts, so its correct guesses among the ``m`` held-out texts (balanced, ``m/2`` of each) are
  Binomial(m, 1/2) — an exact p-value, whatever the classifier. The classifier here: TF-IDF over hashed word
  unigrams and bigrams, L2-normalised, with an L2-penalised logistic regression (C = 1, fitted by L-BFGS) —
  numpy and scipy only, as the kit's runtime has no scikit-learn (tests check it against scikit-learn's).
  A label's share tripled or a new phrasing changes which words occur, which this classifier picks up.

>>> a = [f"play song number {i}" for i in range(60)]
>>> b = [f"what is the weather in city {i}" for i in range(60)]
>>> c2st(a, b, seed=0).p_value < 1e-6
True
>>> round(c2st(a, a[::-1], seed=0).accuracy, 2) <= 0.6
True
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, sparse, special, stats

from kit.errors import ConfigError

N_FEATURES = 2 ** 14
METHOD = "classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): TF-IDF + logistic regression, exact binomial"
_WORD = re.compile(r"\w+", re.UNICODE)


@functools.lru_cache(maxsize=200_000)
def _bucket(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest(), "little") % N_FEATURES


def hashed_counts(texts: Sequence[str]) -> sparse.csr_matrix:
    """Term counts of each text over hashed word unigrams and bigrams (lower-cased), ``N_FEATURES`` columns."""
    rows, cols = [], []
    for i, text in enumerate(texts):
        words = _WORD.findall(str(text).lower())
        grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
        rows += [i] * len(grams)
        cols += [_bucket(g) for g in grams]
    data = np.ones(len(rows))
    return sparse.csr_matrix((data, (rows, cols)), shape=(len(texts), N_FEATURES))


def tfidf(train: sparse.csr_matrix, *others: sparse.csr_matrix) -> list[sparse.csr_matrix]:
    """TF-IDF with the smoothed idf ``log((1 + n) / (1 + df)) + 1`` fitted on ``train`` (scikit-learn's default
    formula), rows L2-normalised; the same weights applied to ``others``."""
    n = train.shape[0]
    df = np.asarray((train > 0).sum(axis=0)).ravel()
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    out = []
    for m in (train, *others):
        w = sparse.csr_matrix(m.multiply(idf[None, :]))
        norms = np.sqrt(np.asarray(w.multiply(w).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        out.append(sparse.csr_matrix(sparse.diags(1.0 / norms) @ w))
    return out


def fit_logistic(x: sparse.csr_matrix, y: np.ndarray, *, c: float = 1.0) -> tuple[np.ndarray, float]:
    """L2-penalised logistic regression (the intercept unpenalised, as scikit-learn's lbfgs solver):
    minimises ``0.5 |w|² + C Σ log(1 + exp(-s_i (x_i·w + b)))``, ``s_i = ±1``. Returns (w, b)."""
    s = np.where(np.asarray(y) > 0, 1.0, -1.0)
    full = x.shape[1]
    # a column no training text uses has weight 0 at the optimum (no loss gradient, only the penalty): fit the rest
    used = np.unique(sparse.csr_matrix(x).indices)
    x = sparse.csr_matrix(x)[:, used]
    d = x.shape[1]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:d], theta[d]
        z = s * (x @ w + b)
        value = 0.5 * float(w @ w) + c * float(np.logaddexp(0.0, -z).sum())
        g = -c * s * special.expit(-z)  # d/dz of log(1 + e^-z), times s
        grad = np.concatenate([w + x.T @ g, [g.sum()]])
        return value, grad

    res = optimize.minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B",
                            options={"maxiter": 500, "gtol": 1e-8})
    w = np.zeros(full)
    w[used] = res.x[:d]
    return w, float(res.x[d])


@dataclass(frozen=True)
class DriftTest:
    """One test of a window against the first: the statistic, its p-value and the items behind it."""

    test: str
    statistic: float
    p_value: float
    n_first: int
    n_window: int

    @property
    def accuracy(self) -> float:
        """For the classifier test: its held-out accuracy (0.5 is a coin)."""
        return self.statistic


def _halves(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    return order[: n // 2], order[n // 2:]


def c2st(first: Sequence[str], window: Sequence[str], *, seed: int = 0, c: float = 1.0) -> DriftTest:
    """The classifier two-sample test of ``window``'s texts against ``first``'s (module docstring). Both are
    cut to the same size (a seeded draw) so that a coin is right half the time; one-sided exact binomial."""
    m = min(len(first), len(window))
    if m < 4:
        raise ConfigError(f"{m} texts in the smaller window: too few for a classifier two-sample test",
                          where="kit.monitor.drift", fix="use windows of at least 4 items (dozens to see drift)")
    rng = np.random.default_rng(seed)
    a = np.asarray(first, dtype=object)[rng.choice(len(first), m, replace=False)]
    b = np.asarray(window, dtype=object)[rng.choice(len(window), m, replace=False)]
    (a_tr, a_te), (b_tr, b_te) = _halves(m, rng), _halves(m, rng)
    train_texts = list(a[a_tr]) + list(b[b_tr])
    test_texts = list(a[a_te]) + list(b[b_te])
    y_train = np.r_[np.zeros(len(a_tr)), np.ones(len(b_tr))]
    y_test = np.r_[np.zeros(len(a_te)), np.ones(len(b_te))]
    x_train, x_test = tfidf(hashed_counts(train_texts), hashed_counts(test_texts))
    w, bias = fit_logistic(x_train, y_train, c=c)
    guess = (x_test @ w + bias) > 0
    correct = int((guess == (y_test > 0)).sum())
    n_test = len(y_test)
    p = float(stats.binom.sf(correct - 1, n_test, 0.5))
    return DriftTest("texts (classifier two-sample test)", correct / n_test, p, len(first), len(window))


def length_test(first: Sequence[str], window: Sequence[str]) -> DriftTest:
    """The Mann–Whitney U test (two-sided) of the texts' lengths in characters; statistic: the ratio of medians.

    >>> length_test(["ab"] * 30, ["abcdefgh"] * 30).p_value < 1e-6
    True
    """
    la = np.array([len(str(t)) for t in first], dtype=float)
    lb = np.array([len(str(t)) for t in window], dtype=float)
    if la.size == 0 or lb.size == 0:
        raise ConfigError("a window without texts", where="kit.monitor.drift", fix="log the request texts (text)")
    if np.ptp(np.r_[la, lb]) == 0:
        return DriftTest("text length (Mann-Whitney U)", 1.0, 1.0, la.size, lb.size)
    p = float(stats.mannwhitneyu(la, lb, alternative="two-sided").pvalue)
    return DriftTest("text length (Mann-Whitney U)", float(np.median(lb) / max(np.median(la), 1.0)), p, la.size,
                     lb.size)
