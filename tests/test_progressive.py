"""The progressive schedule, checked against values computed by hand."""

import math

import pytest

from sivae_core.training.progressive import (
    PAPER_BATCH,
    Phase,
    ProgressiveSchedule,
    fade_alpha,
    fast_schedule,
    paper_schedule,
    uniform_schedule,
)

N = 29_000  # CelebA-HQ training images
PHASE = 30 * N  # images per 30-epoch phase: 870,000


def test_fade_curve_is_the_authors_eased_sine():
    assert fade_alpha(0.0) == 0.0 and fade_alpha(1.0) == 1.0
    assert fade_alpha(0.5) == pytest.approx(0.5)
    assert fade_alpha(1 / 3) == pytest.approx(0.25)  # (1 - cos(pi/3)) / 2
    assert fade_alpha(-1.0) == 0.0 and fade_alpha(2.0) == 1.0
    # the authors' formula: sin(t pi - pi/2) / 2 + 1/2
    assert fade_alpha(0.2) == pytest.approx(math.sin(0.2 * math.pi - 0.5 * math.pi) * 0.5 + 0.5)


def test_paper_schedule_phases_and_totals():
    s = paper_schedule("celeba-hq", gpus=4)
    assert [p.resolution for p in s.phases] == [4, 8, 16, 32, 64, 128, 256]
    assert [p.epochs for p in s.phases] == [30, 30, 30, 30, 30, 30, 50]
    assert [p.fade_epochs for p in s.phases] == [0, 15, 15, 15, 15, 15, 15]
    assert [p.beta_neg for p in s.phases] == [2048, 2048, 2048, 1024, 512, 512, 512]
    assert s.total_epochs == 230 and s.total_images == 230 * N
    assert s.starts == (0, PHASE, 2 * PHASE, 3 * PHASE, 4 * PHASE, 5 * PHASE, 6 * PHASE)
    assert s.state(6 * PHASE).epoch == 180.0  # 256x256 reached at epoch 180
    assert paper_schedule("ffhq").total_epochs == 270 and paper_schedule("ffhq").dataset_size == 60_000
    assert [p.batch for p in paper_schedule(gpus=1).phases] == list(PAPER_BATCH[1]) == [128, 128, 128, 32, 16, 8, 4]


@pytest.mark.parametrize("images, resolution, alpha, batch, beta_neg", [
    (0, 4, 1.0, 512, 2048),
    (PHASE - 1, 4, 1.0, 512, 2048),
    (PHASE, 8, 0.0, 256, 2048),  # a new block starts fully out
    (PHASE + 145_000, 8, 0.25, 256, 2048),  # a third of the 15-epoch fade: (1 - cos(pi/3)) / 2
    (PHASE + 217_500, 8, 0.5, 256, 2048),  # half of the fade
    (PHASE + 435_000, 8, 1.0, 256, 2048),  # fade over after 15 epochs
    (3 * PHASE + 435_000, 32, 1.0, 64, 1024),
    (6 * PHASE + 217_500, 256, 0.5, 16, 512),
    (230 * N - 1, 256, 1.0, 16, 512),
    (10**9, 256, 1.0, 16, 512),  # past the end: the last phase
])
def test_paper_schedule_states_by_hand(images, resolution, alpha, batch, beta_neg):
    st = paper_schedule("celeba-hq", gpus=4).state(images)
    assert (st.resolution, st.batch, st.beta_neg, st.lr) == (resolution, batch, beta_neg, 1.5e-3)
    assert st.alpha == pytest.approx(alpha, abs=1e-12)


def test_vae_warm_up_is_the_first_epoch():
    s = paper_schedule()
    assert s.state(N - 1).vae and not s.state(N).vae


def test_fast_preset_and_curve():
    s = fast_schedule("cpu32", dataset_size=10_000)
    assert [(p.resolution, p.epochs, p.batch) for p in s.phases] == [(4, 0.5, 32), (8, 0.5, 32), (16, 0.5, 16),
                                                                      (32, 1.0, 16)]
    assert s.starts == (0, 5_000, 10_000, 15_000) and s.total_images == 25_000
    st = s.state(5_000 + 1_250)  # half of the 0.25-epoch fade at 8x8
    assert st.resolution == 8 and st.alpha == pytest.approx(0.5)
    c = s.curve(points=11)
    assert c["epoch"][0] == 0.0 and c["epoch"][-1] == 2.5
    assert c["resolution"] == [4, 4, 8, 8, 16, 16, 32, 32, 32, 32, 32]
    assert c["alpha"][2] == 0.0 and c["alpha"][-1] == 1.0


def test_beta_rec_per_resolution_rides_with_its_phase():
    """A schedule given one ``beta_rec`` per resolution hands each phase's value out with its states (fade-in
    included); without one the states carry None, which leaves the objective's own weight alone."""
    s = uniform_schedule(1_000, 16, 1.0, (8, 8, 8), 1e-3, 1.0, beta_rec=(204.8, 51.2, 12.8))
    assert [p.beta_rec for p in s.phases] == [204.8, 51.2, 12.8]
    assert [s.state(n).beta_rec for n in (0, 999, 1_000, 1_250, 2_000, 10_000)] == [204.8, 204.8, 51.2, 51.2,
                                                                                   12.8, 12.8]
    assert {s.state(n).beta_rec for n in range(0, 3_000, 100)} == {204.8, 51.2, 12.8}
    assert uniform_schedule(1_000, 16, 1.0, (8, 8, 8), 1e-3, 1.0).state(1_500).beta_rec is None
    with pytest.raises(ValueError, match="beta_rec"):
        uniform_schedule(1_000, 16, 1.0, (8, 8, 8), 1e-3, 1.0, beta_rec=(1.0, 2.0))


def test_schedule_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = paper_schedule().plot()
    ax.figure.savefig(tmp_path / "schedule.png")
    assert (tmp_path / "schedule.png").stat().st_size > 0


def test_invalid_schedules_are_refused():
    with pytest.raises(ValueError, match="starts at 4x4"):
        ProgressiveSchedule((Phase(8, 1, 8, 1e-3, 1.0),), 100)
    with pytest.raises(ValueError, match="double"):
        ProgressiveSchedule((Phase(4, 1, 8, 1e-3, 1.0), Phase(16, 1, 8, 1e-3, 1.0, 0.5)), 100)
    with pytest.raises(ValueError, match="nothing to fade"):
        ProgressiveSchedule((Phase(4, 1, 8, 1e-3, 1.0, 0.5),), 100)
    with pytest.raises(ValueError, match="need a batch"):
        uniform_schedule(100, 32, 2, (8, 8), 1e-3, 1.0)
