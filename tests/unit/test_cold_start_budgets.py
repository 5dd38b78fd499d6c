"""The CI guards on the built artifact: what the cold path may import and how big the layer may be."""

from local.smoke import MAX_COLD_MODULES, MAX_LAYER_BYTES, budget_failures


def test_a_cold_path_within_budget_passes():
    assert budget_failures(["app", "botocore", "PIL.Image"], layer_size=80_000_000) == []


def test_loading_a_lazy_module_on_the_plain_path_fails_naming_it():
    [failure] = budget_failures(["app", "c2pa", "c2pa.c2pa", "pillow_heif"], layer_size=None)
    assert "c2pa" in failure and "pillow_heif" in failure


def test_boto3_or_powertools_event_classes_on_the_plain_path_fail():
    [failure] = budget_failures(["app", "boto3", "boto3.session", "aws_lambda_powertools.utilities.data_classes"], None)
    assert "boto3," in failure and "data_classes" in failure


def test_too_many_modules_fail():
    modules = [f"m{i}" for i in range(MAX_COLD_MODULES + 1)]
    assert budget_failures(modules, None) == [f"the cold path imported {MAX_COLD_MODULES + 1} modules (ceiling 515)"]


def test_a_layer_past_forty_percent_of_the_lambda_limit_fails():
    assert MAX_LAYER_BYTES == 104_857_600
    assert budget_failures([], MAX_LAYER_BYTES) == []
    assert "unzipped" in budget_failures([], MAX_LAYER_BYTES + 1)[0]
