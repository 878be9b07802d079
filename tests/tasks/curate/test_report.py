from PIL import Image

from tasks.curate.report import funnel_chart
from tasks.curate.stage import StepStats


def test_the_funnel_chart_draws_a_bar_per_step_sized_by_its_documents(tmp_path):
    funnel = [StepStats("quarantine", 1000, 1000, 9, {}), StepStats("gopher_quality", 1000, 250, 9, {"few_words": 750}),
              StepStats("near_dedup", 250, 0, 9, {"near_duplicate": 250})]
    img = Image.open(funnel_chart(funnel, str(tmp_path / "f.png"))).convert("RGB")
    assert img.format is None and img.size[1] > 3 * 20
    blue = [sum(1 for x in range(img.size[0]) if img.getpixel((x, y)) == (59, 125, 216)) for y in range(img.size[1])]
    rows = [max(blue[44 + i * 26:44 + (i + 1) * 26]) for i in range(3)]  # the kept bars, one row per step
    assert rows[0] > 0 and abs(rows[1] / rows[0] - 0.25) < 0.02 and rows[2] == 0
    grey = [sum(1 for x in range(img.size[0]) if img.getpixel((x, y)) == (221, 221, 221)) for y in range(img.size[1])]
    assert abs(max(grey[44 + 2 * 26:44 + 3 * 26]) / rows[0] - 0.25) < 0.02  # the third step received 250


def test_an_empty_funnel_still_gives_a_chart(tmp_path):
    assert Image.open(funnel_chart([], str(tmp_path / "e.png"))).size[0] > 100
