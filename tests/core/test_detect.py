"""Label-issue detection: class-adjusted confident learning and the ensemble's out-of-fold probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelgate.core.detect import (
    DetectorSettings,
    Probabilities,
    adjusted_probs,
    confident_thresholds,
    detect_all,
    ensemble_oof_probs,
    find_label_issues,
    find_label_issues_cleanlab,
    noise_rates,
    true_label_posterior,
)
from labelgate.core.probs import (
    LAYERS_C_GRID,
    auto_folds,
    combine_oof,
    layers_grid,
    plan_oof,
    run_oof_job,
    temperature_scale,
)
from labelgate.errors import ValidationError

pytestmark = pytest.mark.unit

WORDS = {
    "billing": ["refund", "invoice", "charged", "payment", "card", "price"],
    "shipping": ["parcel", "delivery", "tracking", "courier", "shipped", "package"],
    "account": ["password", "login", "username", "profile", "email", "signin"],
}


def _dataset(n_per_class: int = 40, flips: int = 6, seed: int = 0):
    """Texts whose words reveal the class, 3-d 'embeddings' at class centres, and a few flipped labels."""
    rng = np.random.default_rng(seed)
    classes = sorted(WORDS)
    texts, labels, vectors = [], [], []
    for ci, c in enumerate(classes):
        for i in range(n_per_class):
            words = rng.choice(WORDS[c], size=4)
            texts.append(f"hello {' '.join(words)} please help {i}")
            labels.append(c)
            v = np.eye(3)[ci] + rng.normal(0, 0.15, 3)
            vectors.append(v / np.linalg.norm(v))
    flipped = rng.choice(len(labels), size=flips, replace=False)
    given = list(labels)
    for i in flipped:
        given[i] = classes[(classes.index(labels[i]) + 1) % 3]
    ids = [f"r{i:03d}" for i in range(len(texts))]
    return ids, texts, given, labels, np.asarray(vectors, np.float32), set(np.asarray(ids)[flipped])


def test_thresholds_and_adjusted_probs_put_classes_on_one_scale():
    probs = np.array([[0.9, 0.1], [0.95, 0.05], [0.55, 0.45], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 0, 0, 1, 1])
    t = confident_thresholds(probs, labels)
    assert t == pytest.approx([0.8, 0.4])
    q = adjusted_probs(probs, labels)
    assert q.sum(axis=1) == pytest.approx(np.ones(5))
    # row 2: the plain argmax is its given class 0, but class 1 clears its own (lower) threshold by more
    assert q[2, 1] > q[2, 0]
    p = Probabilities(probs=probs, classes=["a", "b"], labels=labels, method="t")
    found = find_label_issues(list("vwxyz"), p)
    assert list(found["is_label_issue"]) == [False, False, True, False, False]


def test_find_label_issues_flags_adjusted_disagreement_with_reason():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.15, 0.85], [0.95, 0.05], [0.2, 0.8]])
    labels = np.array([0, 0, 1, 1, 1])
    p = Probabilities(probs=probs, classes=["neg", "pos"], labels=labels, method="t")
    found = find_label_issues(["a", "b", "c", "d", "e"], p)
    assert list(found["is_label_issue"]) == [False, False, False, True, False]
    row = found.set_index("row_id").loc["d"]
    assert row["suggested_label"] == "neg" and row["given_label"] == "pos"
    assert row["reason"].startswith("model disagrees: neg 0.95 vs given pos 0.05")
    assert found["label_score"].between(0, 1).all()
    assert found.set_index("row_id")["label_score"].idxmin() == "d"
    assert found.loc[~found["is_label_issue"], "reason"].isna().all()


def test_cleanlab_recipe_rule_has_the_same_columns():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet([1, 1, 1], size=60)
    labels = rng.integers(0, 3, 60)
    p = Probabilities(probs=probs, classes=["a", "b", "c"], labels=labels, method="t")
    ours, recipe = (
        find_label_issues([str(i) for i in range(60)], p),
        find_label_issues_cleanlab([str(i) for i in range(60)], p),
    )
    assert list(ours.columns) == list(recipe.columns)


def test_temperature_scale_sharpens_underconfident_probs():
    labels = np.array([0, 1, 0, 1] * 25)
    soft = np.where(np.eye(2)[labels] > 0, 0.6, 0.4)
    calibrated, T = temperature_scale(soft, labels)
    assert T < 1.0
    assert (calibrated[np.arange(100), labels] > 0.9).all()


def test_ensemble_finds_flipped_labels_out_of_fold():
    ids, texts, given, truth, vectors, flipped = _dataset()
    p = ensemble_oof_probs(vectors, given, texts=texts, n_folds=5, seed=0)
    assert p.probs.shape == (len(ids), 3) and np.allclose(p.probs.sum(axis=1), 1)
    assert set(p.members) == {"embedding", "words", "chars"}
    assert p.method == "ensemble(embedding+words+chars)-5fold"
    found = find_label_issues(ids, p)
    flagged = set(found.loc[found["is_label_issue"], "row_id"])
    assert flipped <= flagged
    assert len(flagged) <= len(flipped) + 3
    fixed = found.set_index("row_id").loc[sorted(flipped), "suggested_label"]
    assert list(fixed) == [truth[ids.index(i)] for i in sorted(flipped)]


@pytest.mark.parametrize(
    ("n_rows", "smallest", "folds"),
    [
        (88, 7, 7),
        (397, 100, 20),
        (3038, 900, 20),
        (5000, 900, 20),
        (10_000, 900, 10),
        (20_000, 900, 5),
        (1_000_000, 900, 5),
        (60, 1, 2),
    ],
)
def test_auto_folds_spends_a_fixed_budget_between_5_and_20_folds(n_rows, smallest, folds):
    assert auto_folds(n_rows, smallest) == folds


def test_folds_default_to_auto_and_are_recorded():
    ids, texts, given, _, vectors, _ = _dataset()
    smallest = int(pd.Series(given).value_counts().min())
    p = ensemble_oof_probs(vectors, given, texts=texts)  # n_folds=None
    k = auto_folds(len(ids), smallest)
    assert k > 5 and p.n_folds == k and p.method.endswith(f"-{k}fold")
    assert ensemble_oof_probs(vectors, given, n_folds=3).n_folds == 3
    assert len(plan_oof(vectors, given, n_folds=None).folds) == k


def test_ensemble_rejects_unusable_input():
    with pytest.raises(ValidationError, match="at least 2 classes"):
        ensemble_oof_probs(np.zeros((6, 2)), ["a"] * 6, texts=["x"] * 6)
    with pytest.raises(ValidationError, match="class 'b' has 2 rows"):
        ensemble_oof_probs(np.zeros((8, 2)), ["a"] * 6 + ["b"] * 2, texts=["x y"] * 8, n_folds=5)
    with pytest.raises(ValidationError, match="unknown detector member"):
        ensemble_oof_probs(np.zeros((10, 2)), ["a", "b"] * 5, texts=["x"] * 10, members=["bert"])
    with pytest.raises(ValueError, match="lexical members need 10 texts"):
        ensemble_oof_probs(np.zeros((10, 2)), ["a", "b"] * 5, members=["embedding", "words"], n_folds=2)
    with pytest.raises(ValueError, match="member 'layers' needs 10 layer-feature rows, got None"):
        ensemble_oof_probs(np.zeros((10, 2)), ["a", "b"] * 5, members=["layers"], n_folds=2)
    with pytest.raises(ValidationError, match="unknown detector member"):  # no inputs at all: no member
        ensemble_oof_probs(None, ["a", "b"] * 5, n_folds=2)


def test_default_members_are_those_whose_inputs_are_given():
    _, texts, given, _, vectors, _ = _dataset()
    assert set(ensemble_oof_probs(vectors, given, n_folds=3).members) == {"embedding"}
    layers = vectors + np.random.default_rng(1).normal(0, 0.01, vectors.shape)
    p = ensemble_oof_probs(vectors, given, texts=texts, layer_features=layers, n_folds=3)
    assert set(p.members) == {"embedding", "words", "chars", "layers"}
    assert p.method == "ensemble(embedding+words+chars+layers)-3fold"
    assert p.chosen["layers_C"] in LAYERS_C_GRID and p.chosen["temperature"] > 0


def test_layers_member_picks_the_c_with_the_lowest_out_of_fold_log_loss():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    F = rng.normal(0, 1, (200, 40))
    F[:, 0] += 1.5 * y  # one informative feature among 39 noise features: strong regularisation wins
    p = ensemble_oof_probs(None, [str(v) for v in y], layer_features=F, members=["layers"], n_folds=4)
    plan = plan_oof(None, [str(v) for v in y], layer_features=F, members=["layers"], n_folds=4)
    raw = np.zeros((200, 2, len(LAYERS_C_GRID)))
    for job in plan.jobs:
        raw[plan.folds[job.fold][1]] = run_oof_job(plan, job)
    losses = [-np.log(np.clip(raw[np.arange(200), y, g], 1e-12, 1)).mean() for g in range(len(LAYERS_C_GRID))]
    assert p.chosen["layers_C"] == LAYERS_C_GRID[int(np.argmin(losses))]
    np.testing.assert_allclose(p.members["layers"], raw[:, :, int(np.argmin(losses))], atol=1e-9)
    assert layers_grid(10**6) == (LAYERS_C_GRID[len(LAYERS_C_GRID) // 2],)


def test_combining_fold_results_without_assembling_every_c_gives_the_same_bits():
    """combine_oof chooses the layers C fold by fold (no (rows x classes x C) array): the same choice and the same
    probabilities, bit for bit, as assembling every C first (what it did before)."""
    from labelgate.core import probs

    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 60)
    F = rng.normal(0, 1, (180, 30))
    F[:, 0] += y
    F[:, 1] -= 0.5 * y
    labels = [str(v) for v in y]
    plan = plan_oof(F[:, :8], labels, layer_features=F, members=["embedding", "layers"], n_folds=5)
    results = [run_oof_job(plan, job) for job in plan.jobs]
    got = combine_oof(plan, list(results))
    raw = np.zeros((180, 3, len(plan.layers_grid)))
    for job, part in zip(plan.jobs, results):
        if job.member == "layers":
            raw[plan.folds[job.fold][1]] = part
    losses = [probs._log_loss(probs._normalise(raw[:, :, g]), plan.y) for g in range(raw.shape[2])]
    best = int(np.argmin(losses))
    assert got.chosen["layers_C"] == plan.layers_grid[best]
    np.testing.assert_array_equal(got.members["layers"], probs._normalise(raw[:, :, best]))
    assert got.layers_fixed_C is None


def test_combining_lets_go_of_each_fold_result_and_keeps_the_numbers():
    """combine_oof empties the list it is given (a million rows of 150 classes: 1.2 GB per member's results), and
    gives the same bits as combining a copy of it."""
    rng = np.random.default_rng(2)
    y = np.repeat([0, 1, 2], 40)
    F = rng.normal(0, 1, (120, 12))
    F[:, 0] += y
    plan = plan_oof(F, [str(v) for v in y], layer_features=F, members=["embedding", "layers"], n_folds=4)
    results = [run_oof_job(plan, job) for job in plan.jobs]
    kept = [r.copy() for r in results]
    got = combine_oof(plan, results)
    assert results == [None] * len(plan.jobs)
    again = combine_oof(plan, kept)
    np.testing.assert_array_equal(got.probs, again.probs)
    for member in plan.members:
        np.testing.assert_array_equal(got.members[member], again.members[member])


def test_combining_without_keeping_the_members_gives_the_bits_of_averaging_them_all():
    """Large inputs: combine_oof adds each member into the ensemble's sum and lets it go (one member's array beside
    the sum instead of all four); the probabilities are those of assembling every member and averaging them (what
    it did before), bit for bit, and each member's accuracy is still reported."""
    from labelgate.core import probs

    _, texts, given, _, vectors, _ = _dataset()
    layers = vectors + np.random.default_rng(1).normal(0, 0.01, vectors.shape)
    plan = plan_oof(vectors, given, texts=texts, layer_features=layers, n_folds=3)
    results = [run_oof_job(plan, job) for job in plan.jobs]
    kept = combine_oof(plan, [r.copy() for r in results], keep_members=True)
    lean = combine_oof(plan, results, keep_members=False)
    assert lean.members == {} and list(kept.members) == list(plan.members) == list(probs.MEMBERS)
    mean = probs._normalise(np.mean(np.stack([kept.members[m] for m in plan.members]), axis=0))
    reference, temperature = probs.temperature_scale(mean, plan.y)
    np.testing.assert_array_equal(lean.probs, reference)
    np.testing.assert_array_equal(kept.probs, reference)
    assert lean.chosen == kept.chosen and lean.chosen["temperature"] == round(temperature, 4)
    expected = {m: float((kept.members[m].argmax(axis=1) == plan.y).mean()) for m in plan.members}
    assert lean.member_accuracy == kept.member_accuracy == expected
    assert not np.array_equal(kept.members["embedding"], kept.members["words"])  # the average is of differing arrays


def test_members_are_kept_for_small_inputs_only(monkeypatch: pytest.MonkeyPatch):
    from labelgate.core import probs

    _, _, given, _, vectors, _ = _dataset()
    plan = plan_oof(vectors, given, n_folds=3)
    small = combine_oof(plan, [run_oof_job(plan, job) for job in plan.jobs])
    assert list(small.members) == ["embedding"]
    monkeypatch.setattr(probs, "KEEP_MEMBERS_MAX_CELLS", len(plan.y) * len(plan.classes) - 1)
    large = combine_oof(plan, [run_oof_job(plan, job) for job in plan.jobs])
    assert large.members == {} and large.member_accuracy == small.member_accuracy
    np.testing.assert_array_equal(large.probs, small.probs)


def test_layers_search_is_skipped_where_its_results_would_not_fit_in_memory():
    from labelgate.core.probs import LAYERS_GRID_MAX_CELLS

    assert layers_grid(9_000, scored_cells=10_003 * 77) == LAYERS_C_GRID
    middle = (LAYERS_C_GRID[len(LAYERS_C_GRID) // 2],)
    assert layers_grid(40_000, scored_cells=LAYERS_GRID_MAX_CELLS + 1) == middle
    assert layers_grid(40_000, scored_cells=LAYERS_GRID_MAX_CELLS) == LAYERS_C_GRID


def test_true_label_posterior_weighs_the_given_label_by_its_class_noise_rate():
    # class a is never mislabelled, class b often: a row given 'a' keeps more weight than one given 'b'
    rates = np.array([[0.6, 0.0], [0.4, 1.0]])  # [given, true]: 40% of true-a rows were given b
    probs = np.array([[0.3, 0.7], [0.7, 0.3]])
    labels = np.array([0, 1])
    post = true_label_posterior(probs, labels, rates)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    # given a: P(true=b) = 0.7*0 / (0.3*0.6 + 0) = 0 -> only a could have been given 'a'
    np.testing.assert_allclose(post[0], [1.0, 0.0])
    # given b: P(true=a) = 0.7*0.4 / (0.7*0.4 + 0.3*1.0)
    np.testing.assert_allclose(post[1, 0], 0.28 / 0.58)


def test_noise_rates_columns_are_distributions():
    _, _, given, _, vectors, _ = _dataset()
    p = ensemble_oof_probs(vectors, given, n_folds=3)
    rates = noise_rates(p.probs, p.labels)
    assert rates.shape == (3, 3)
    np.testing.assert_allclose(rates.sum(axis=0), 1.0)
    assert (np.diag(rates) > 0.5).all()  # the synthetic labels are mostly right


def test_detect_all_writes_one_shape_for_every_detector():
    ids, texts, given, _, vectors, _ = _dataset()
    texts[5] = texts[4].upper()  # exact duplicate after case folding
    vectors[5] = vectors[4]
    texts[7] = "?!"  # no words
    test_texts = [texts[10], "something else entirely"]
    test_vectors = np.vstack([vectors[10], np.array([0.5, 0.5, 0.7], np.float32)])
    found = detect_all(
        ids,
        texts,
        given,
        vectors,
        settings=DetectorSettings(max_text_tokens=20),
        token_counts=[len(t.split()) for t in texts],
        test_ids=["x1", "x2"],
        test_texts=test_texts,
        test_vectors=test_vectors,
    )
    issues = found.issues
    assert list(issues.columns) == [
        "row_id",
        "issue_type",
        "score",
        "is_issue",
        "given_label",
        "suggested_label",
        "suggested_prob",
        "reason",
        "related_row_id",
        "model_prob",
        "label_kind",
        "ambiguity",
    ]
    assert not issues.duplicated(["row_id", "issue_type"]).any()
    others = issues[issues["issue_type"] != "label"]
    assert others["label_kind"].isna().all() and others["ambiguity"].isna().all()  # label issues' columns only
    assert issues["score"].dropna().between(0, 1).all()
    flagged = issues[issues["is_issue"]].set_index(["row_id", "issue_type"])
    assert flagged.loc[("r005", "exact_duplicate"), "related_row_id"] == "r004"
    assert ("r004", "exact_duplicate") not in flagged.index
    assert flagged.loc[("r007", "empty"), "score"] == 0.0
    assert flagged.loc[("r010", "leakage"), "related_row_id"] == "x1"
    assert "same text as test row x1" in flagged.loc[("r010", "leakage"), "reason"]
    assert flagged["reason"].notna().all()
    assert (issues["issue_type"] == "label").sum() == len(ids)
    assert set(found.seconds) == {"label", "neighbours", "leakage"}


def test_label_issue_rows_match_find_label_issues():
    ids, texts, given, _, vectors, _ = _dataset(flips=3)
    found = detect_all(ids, texts, given, vectors, settings=DetectorSettings(max_text_tokens=None))
    label = found.issues[found.issues["issue_type"] == "label"].set_index("row_id")
    wide = found.label_issues.set_index("row_id")
    pd.testing.assert_series_equal(
        label["is_issue"].rename("is_label_issue"), wide["is_label_issue"], check_names=False
    )
    pd.testing.assert_series_equal(label["label_kind"], wide["label_kind"].astype(object), check_names=False)
    assert label.loc[label["is_issue"], "label_kind"].notna().all() and label["ambiguity"].between(0, 1).all()


@pytest.mark.parametrize("cap", [None, 40])
def test_lexical_members_match_vectorisers_refitted_on_each_fold(monkeypatch, cap):
    """The n-grams are extracted once per plan; each fold must still see only its training rows' vocabulary
    and IDF (what a vectoriser fitted on them gives), with and without the vocabulary cap."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    from labelgate.core import probs

    if cap is not None:
        monkeypatch.setattr(probs, "MAX_WORD_FEATURES", cap)
        monkeypatch.setattr(probs, "MAX_CHAR_FEATURES", cap)
    _, texts, given, _, _, _ = _dataset()
    texts = [*texts[:-3], "", "zzqx only-here", "!!"]  # an empty text and n-grams seen in one fold only
    plan = plan_oof(None, given, texts=texts, members=["words", "chars"], n_folds=4)
    T, y, k = np.asarray(texts, dtype=object), plan.y, len(plan.classes)

    def chars_reference(train, test):
        vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True, max_features=cap)
        return probs._fit_predict(probs._logreg(1.0), vec.fit_transform(T[train]), y[train], vec.transform(T[test]), k)

    def words_reference(train, test):  # NB-LR itself is shared; the features come from a refitted vectoriser
        vec = CountVectorizer(
            ngram_range=(1, 2), min_df=2, binary=True, token_pattern=probs.TOKEN_PATTERN, max_features=cap
        )
        X_train, X_test = vec.fit_transform(T[train]).astype(float), vec.transform(T[test]).astype(float)
        return probs._nblr(X_train, y[train], X_test, k)

    for fold, (train, test) in enumerate(plan.folds):
        chars = run_oof_job(plan, probs.OofJob("chars", fold))
        words = run_oof_job(plan, probs.OofJob("words", fold))
        np.testing.assert_allclose(chars, chars_reference(train, test), rtol=0, atol=1e-9)
        np.testing.assert_allclose(words, words_reference(train, test), rtol=0, atol=1e-9)
    if cap is not None:
        train = plan.folds[0][0]  # the cap did bite
        assert len(probs._fold_columns(plan.char_counts[train], min_df=3, max_features=cap)[0]) == cap
        assert len(probs._fold_columns(plan.word_counts[train], min_df=2, max_features=cap)[0]) == cap


def test_many_classes_cap_the_chars_vocabulary_and_the_plan_records_it(monkeypatch):
    """With many classes the ``chars`` member keeps at most MAX_CHAR_PARAMS / classes n-grams per fold (the most
    frequent, as a refitted ``TfidfVectorizer(max_features=)`` does), and the plan says so when the cap bites."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    from labelgate.core import probs

    _, texts, given, _, _, _ = _dataset()
    k = len(set(given))
    monkeypatch.setattr(probs, "MIN_CHAR_FEATURES", 10)
    monkeypatch.setattr(probs, "MAX_CHAR_PARAMS", 30 * k)
    assert probs.char_features_cap(k) == 30
    plan = plan_oof(None, given, texts=texts, members=["chars"], n_folds=4)
    assert plan.char_max_features == 30 and plan.char_features_cap == 30
    T, y = np.asarray(texts, dtype=object), plan.y
    train, test = plan.folds[0]
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), min_df=3, sublinear_tf=True, max_features=30)
    reference = probs._fit_predict(probs._logreg(1.0), vec.fit_transform(T[train]), y[train], vec.transform(T[test]), k)
    np.testing.assert_allclose(run_oof_job(plan, probs.OofJob("chars", 0)), reference, rtol=0, atol=1e-9)
    assert combine_oof(plan, [run_oof_job(plan, job) for job in plan.jobs]).char_features_cap == 30
    # a vocabulary within the cap is not an approximation; nor are few classes
    monkeypatch.setattr(probs, "MAX_CHAR_PARAMS", 10**6 * k)
    assert plan_oof(None, given, texts=texts, members=["chars"], n_folds=4).char_features_cap is None
    assert probs.char_features_cap(3) == probs.MAX_CHAR_FEATURES


def test_lexical_members_fall_back_to_the_class_prior_without_ngrams():
    from labelgate.core import probs

    labels = ["a", "b"] * 6
    plan = plan_oof(None, labels, texts=[""] * 12, members=["words", "chars"], n_folds=3)
    assert plan.word_counts is None and plan.char_counts is None
    for job in plan.jobs:
        np.testing.assert_allclose(run_oof_job(plan, job), 0.5)
    # n-grams exist, but none is frequent enough in any training fold
    plan = plan_oof(None, labels, texts=[f"w{i}" for i in range(12)], members=["words", "chars"], n_folds=3)
    assert run_oof_job(plan, probs.OofJob("words", 0)).tolist() == [[0.5, 0.5]] * 4


def test_jobs_list_the_costliest_member_first_each_members_folds_in_order():
    """Workers take jobs in plan order: the slow `chars` fits first, so no worker is left with one at the end; each
    member's folds stay in fold order (combine_oof reads them so: the probabilities do not depend on it)."""
    from labelgate.core.probs import JOB_COST_ORDER

    rng = np.random.default_rng(2)
    y = np.repeat([0, 1], 30)
    texts = [f"row {i} says {'yes' if v else 'no'} please" for i, v in enumerate(y)]
    F = rng.normal(0, 1, (60, 6)).astype(np.float32)
    plan = plan_oof(F, [str(v) for v in y], texts=texts, layer_features=F, n_folds=3)
    assert plan.members == ("embedding", "words", "chars", "layers")  # the results keep the members' own order
    assert [(j.member, j.fold) for j in plan.jobs] == [(m, f) for m in JOB_COST_ORDER for f in range(3)]
    assert list(combine_oof(plan, [run_oof_job(plan, job) for job in plan.jobs]).members) == list(plan.members)
