import pytest
import torch
from torch import nn

from ferkit.errors import ConfigError, ModelNotFoundError
from ferkit.models import FerModel, count_parameters, create_model, list_models, macs_per_face, register_model


def test_registry_lists_the_models():
    assert {"baseline_cnn", "deep_cnn", "fernet", "preresnet"} <= set(list_models())
    assert list_models() == sorted(list_models())


def test_unknown_model_error_lists_the_available_names():
    with pytest.raises(ModelNotFoundError) as info:
        create_model("deep_cnm")
    message = str(info.value)
    assert "unknown model 'deep_cnm'" in message
    for name in list_models():
        assert name in message


def test_bad_model_arguments_are_a_clear_error():
    with pytest.raises(ConfigError, match="does not accept these arguments"):
        create_model("deep_cnn", colour=True)


def test_duplicate_registration_is_refused():
    with pytest.raises(ValueError, match="already registered as 'deep_cnn'"):
        register_model("deep_cnn")(nn.Identity)


def test_deep_cnn_has_the_seed_parameter_count():
    counts = count_parameters(create_model("deep_cnn"))
    assert (counts.total, counts.trainable, counts.non_trainable) == (5_873_096, 5_870_280, 2_816)


def test_preresnet_parameters_counted_by_hand():
    def block(cin: int, cout: int) -> int:  # two BNs (4 values per channel), two 3x3 convs, 1x1 shortcut
        return 4 * cin + 9 * cin * cout + 4 * cout + 9 * cout * cout + (cin * cout if cin != cout else 0)

    widths, depths = (48, 96, 192, 320), (1, 2, 2, 2)
    total, cin = 9 * 48, 48  # stem
    for width, depth in zip(widths, depths):
        total += block(cin, width) + (depth - 1) * block(width, width)
        cin = width
    total += 4 * 320 + 320 * 8 + 8  # final BN, linear
    counts = count_parameters(create_model("preresnet"))
    assert counts.total == total and total < 6_000_000


def test_baseline_cnn_is_the_deep_cnn_without_its_last_block_and_dense_layer():
    counts = count_parameters(create_model("baseline_cnn"))
    # blocks 64 (38,080) + 128 (222,464) + Dense 18,432 -> 8 (147,464)
    assert counts.total == 38_080 + 222_464 + 147_464


def test_macs_per_face_of_deep_cnn():
    # convs at 48, 24, 12 px plus the two dense layers
    convs = 48 * 48 * 9 * (1 * 64 + 64 * 64) + 24 * 24 * 9 * (64 * 128 + 128 * 128) + 12 * 12 * 9 * (128 * 256 + 256 * 256)
    assert macs_per_face(create_model("deep_cnn")) == convs + 9216 * 512 + 512 * 8


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_and_gradcam_layer(name: str):
    torch.manual_seed(0)
    model = create_model(name)
    assert isinstance(model, FerModel)
    x = torch.randn(4, 1, 48, 48)
    logits = model(x)
    assert logits.shape == (4, 8) and torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, f"{param_name} got no gradient"
    activations = []
    handle = model.gradcam_module().register_forward_hook(lambda m, i, o: activations.append(o))
    eval_logits = model.eval()(x)
    handle.remove()
    torch.testing.assert_close(model.forward_head(model.forward_features(x)), eval_logits, rtol=0, atol=0)
    assert activations[0].ndim == 4 and activations[0].shape[-1] > 1


@pytest.mark.parametrize("name", list_models())
def test_other_class_counts(name: str):
    assert create_model(name, num_classes=7)(torch.randn(2, 1, 48, 48)).shape == (2, 7)
