"""The Train page's build panel: widgets derived from the config's one declaration, links that name their
bad values, and no reading outside the lab's data folders (Streamlit AppTest, no training)."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from aelab.config import CONSTRAINTS, Interval, Options, RunConfig, flat_items, rule
from aelab.ui import build

from apptest import APP, lab_env, tab_for
TRAIN = "app_pages/1_Train.py"
# A valid config that switches each dependent range away from its default form.
OTHER = {"noise.kind": "masking", "noise.level": 0.1, "sparsity.kind": "l1", "sparsity.weight": 0.1,
         "train.strategy": "greedy", "train.finetune_epochs": 2, "model.kind": "conv", "model.layers": "16,8"}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    d = tmp_path_factory.mktemp("runs")
    lab_env(mp, d)
    yield d
    mp.undo()


def train_page(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.query_params.update(query)
    at.switch_page(TRAIN).run()
    assert not at.exception, at.exception
    return at


def warnings(at) -> list[str]:
    """The link's problems: one warning, one list item per value not used."""
    items = [line for w in at.warning for line in w.value.splitlines() if line.startswith("- ")]
    assert len(items) == sum(w.value.count("\n- ") for w in at.warning)
    return items


@pytest.mark.parametrize("ctx", [{}, OTHER, {"noise.kind": "gaussian", "noise.level": 0.3}])
def test_widget_options_and_bounds_are_the_declared_ones(ctx):
    cfg = RunConfig().with_overrides(ctx)
    for key in CONSTRAINTS:
        r, spec, value = rule(cfg, key), build.widget_spec(key, cfg), flat_items(cfg)[key]
        if isinstance(r, Options):
            assert spec["kind"] == "select" and tuple(spec["options"]) == r.values, key
        elif isinstance(r, Interval):
            assert spec["kind"] == type(value).__name__ and (spec["min"], spec["max"]) == (r.lo, r.hi), key
        else:
            assert spec["kind"] == ("bool" if isinstance(value, bool) else "text"), key
        if r is not None:
            assert r.describe(key) in spec["help"], key


@pytest.mark.parametrize("ctx", [{}, OTHER])
def test_the_page_draws_the_declared_bounds(runs_dir, ctx):
    at = train_page(**{k: str(v) for k, v in ctx.items()})
    cfg = RunConfig().with_overrides(ctx)
    assert not warnings(at) and not at.error
    for key in CONSTRAINTS:
        r = rule(cfg, key)
        if isinstance(r, Interval):
            w = tab_for(at, key).number_input(key=key)
            assert (w.min, w.max) == (r.lo, r.hi), key
        elif isinstance(r, Options):
            assert tuple(tab_for(at, key).selectbox(key=key).options) == r.values, key


def test_only_the_open_tab_is_drawn_and_every_tab_keeps_its_values(runs_dir):
    at = train_page()
    drawn = {w.key for w in at.get("number_input") + at.get("text_input") + at.get("selectbox") + at.get("checkbox")}
    assert set(build.GROUPS["Model"]) <= drawn and not drawn & {*build.KNOBS} - {*build.GROUPS["Model"]}
    changed = {"model.layers": "40,6", "noise.kind": "gaussian", "noise.level": 0.2, "train.epochs": 3,
               "data.max_train": 300}
    for key, value in changed.items():
        tab_for(at, key).get_by_key(key).set_value(value).run()
    at.switch_page("app_pages/2_Compare.py").run()  # another page and back: nothing is lost either
    at.switch_page(TRAIN).run()
    for key, value in [*changed.items(), *changed.items()]:  # each tab closed and opened again, twice
        w = tab_for(at, key).get_by_key(key)
        # the value, and sent to the browser with the widget (else a reopened tab shows the widget's default)
        assert w.value == value and w.proto.set_value, key
    # the config the page would launch, and the link it shares, hold them all
    assert {k: at.session_state[build.STORE][k] for k in changed} == changed
    assert {k: at.query_params[k] for k in changed} == {k: str(v) for k, v in changed.items()}
    assert not at.error and not at.button(key="launch").disabled


def test_a_link_names_each_bad_value_and_loads_the_rest(runs_dir):
    at = train_page(**{"noise.kind": "masking", "noise.level": "1.5", "sparsity.target": "0.7",
                       "train.lr": "-1", "model.layers": "64,16", "bogus": "3"})
    text = warnings(at)
    assert len(text) == 3
    level = next(w for w in text if "noise.level" in w)
    assert "**noise level**" in level and "1.5" in level and "0 < noise.level < 1" in level
    lr = next(w for w in text if "train.lr" in w)
    assert "-1" in lr and "0 < train.lr <= 10" in lr
    assert any("'bogus'" in w and "'3'" in w for w in text)
    # the good values load unchanged (0.7 is a valid KL target; the old widget clamped it to 0.5)
    assert tab_for(at, "noise.kind").selectbox(key="noise.kind").value == "masking"
    assert tab_for(at, "model.layers").text_input(key="model.layers").value == "64,16"
    assert tab_for(at, "sparsity.target").number_input(key="sparsity.target").value == 0.7
    # the bad ones keep their defaults; masking at level 0 is then explained by its label, launch waits
    assert tab_for(at, "noise.level").number_input(key="noise.level").value == 0.0
    assert tab_for(at, "train.lr").number_input(key="train.lr").value == RunConfig().train.lr
    assert "noise level" in at.error[0].value and "noise.level: 0 is not accepted" in at.error[0].value
    assert at.button(key="launch").disabled


def test_a_value_outside_the_widget_range_is_reported_not_moved(runs_dir):
    at = train_page(**{"noise.kind": "gaussian", "noise.level": "1.5"})
    assert not warnings(at) and not at.error  # sigma 1.5 is fine for gaussian noise
    tab_for(at, "noise.kind").selectbox(key="noise.kind").set_value("masking").run()
    assert not at.exception, at.exception
    assert tab_for(at, "noise.level").number_input(key="noise.level").value == 1.5
    assert "noise.level: 1.5 is not accepted (accepted: 0 < noise.level < 1" in at.error[0].value
    assert at.button(key="launch").disabled


def test_links_and_widgets_cannot_read_outside_the_data_folders(runs_dir, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the loader was called")
    monkeypatch.setattr("aelab.data.load_file", boom)
    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n3,4\n5,6\n")
    texts = []
    for path in ["/etc/passwd", "/etc/no-such-file", str(secret), "data/../../etc/passwd"]:
        at = train_page(**{"data.name": "file", "data.path": path})
        assert not at.exception, at.exception
        [w] = warnings(at)
        assert "data.path" in w and "outside the lab's data folders" in w
        texts.append(w.replace(repr(path), "PATH"))
        assert tab_for(at, "data.path").text_input(key="data.path").value == ""  # kept its default
        # typed into the widget instead: refused the same way, nothing read, nothing launched
        tab_for(at, "data.path").text_input(key="data.path").set_value(path).run()
        assert not at.exception, at.exception
        assert "outside the lab's data folders" in at.error[0].value and at.button(key="launch").disabled
    assert len(set(texts)) == 1  # the same words whether the file exists or not


def test_a_data_dir_outside_creates_no_folder(runs_dir, tmp_path):
    target = tmp_path / "made" / "by" / "a link"
    at = train_page(**{"data.name": "mnist", "data.data_dir": str(target)})
    assert any("data.data_dir" in w and "outside the lab's data folders" in w for w in warnings(at))
    assert tab_for(at, "data.data_dir").text_input(key="data.data_dir").value == "data"
    tab_for(at, "data.data_dir").text_input(key="data.data_dir").set_value(str(target)).run()
    assert "data.data_dir" in at.error[0].value and at.button(key="launch").disabled
    assert not (tmp_path / "made").exists()


def test_a_run_id_from_the_url_stays_in_the_store(runs_dir, tmp_path):
    (runs_dir.parent / "outside").mkdir(exist_ok=True)
    (runs_dir.parent / "outside" / "config.json").write_text("{}")
    at = train_page(run="../outside")
    assert any("no run '../outside'" in w.value for w in at.warning)


def test_uploads_are_checked_before_they_are_kept_and_never_collide(runs_dir):
    import io

    import numpy as np

    uploads = runs_dir / "uploads"
    at = tab_for(train_page(**{"data.name": "file", "train.loss": "mse"}), "data.path")
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}] * 5, dtype=object))  # an object array needs pickle: refused
    at.file_uploader(key="upload").set_value(("table.npz", buf.getvalue(), "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert "the upload was not kept: table.npz" in at.error[0].value
    assert tab_for(at, "data.path").text_input(key="data.path").value == "" and not uploads.exists()
    kept = []
    for rows in ("a,b\n1,2\n3,4\n5,6\n7,8\n", "a,b\n9,9\n8,1\n7,5\n6,2\n"):
        at.file_uploader(key="upload").set_value(("table.csv", rows.encode(), "text/csv")).run()
        assert not at.exception, at.exception
        kept.append(Path(tab_for(at, "data.path").text_input(key="data.path").value))
        assert kept[-1].read_text() == rows and not at.error  # loads, trains with mse
    assert kept[0] != kept[1] and kept[0].name == kept[1].name == "table.csv"
    assert sorted(p.parent.parent for p in kept) == [uploads, uploads]
    tab_for(tab_for(at, "model.layers"), "data.path")  # the Data tab closed and opened: the upload box is empty
    assert at.text_input(key="data.path").value == str(kept[-1])
    assert any("Using **table.csv**" in c.value for c in at.caption)


def test_the_layer_buttons_add_half_the_last_width_and_remove_the_last(runs_dir):
    at = train_page(**{"model.layers": "128,64"})
    for key, says in (("_add_layer", "add a layer"), ("_remove_layer", "remove the last layer")):
        button = at.button(key=key)  # + and −, no words (cut to "add…" at 1280 px): the help says what
        assert button.label == "" and button.proto.icon and button.help.startswith(says)
    at.button(key="_add_layer").click().run()
    assert at.text_input(key="model.layers").value == "128,64,32"
    at.button(key="_remove_layer").click().run()
    at.button(key="_remove_layer").click().run()
    assert at.text_input(key="model.layers").value == "128"
    at.button(key="_remove_layer").click().run()  # the last one stays
    assert at.text_input(key="model.layers").value == "128"
    assert not at.exception, at.exception
