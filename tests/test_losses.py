import torch
import torch.nn.functional as F

from trainwell.losses import CustomLoss, MemberLoss


def _batch():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(2, 16, 4, generator=g)  # 2 members, 16 rows, 4 classes
    y = torch.randint(0, 4, (2, 16), generator=g)
    return out, y


def test_training_loss_smooths_each_member_by_its_own_rate():
    out, y = _batch()
    loss = MemberLoss("classification", torch.tensor([[0.0], [0.1]]), None)
    values = loss(out, y)
    for k, s in enumerate((0.0, 0.1)):
        torch.testing.assert_close(values[k], F.cross_entropy(out[k], y[k], label_smoothing=s))


def test_validation_loss_is_the_plain_cross_entropy_whatever_the_smoothing():
    out, y = _batch()
    loss = MemberLoss("classification", torch.tensor([[0.1], [0.2]]), None).for_validation()
    for k in range(2):
        torch.testing.assert_close(loss(out, y)[k], F.cross_entropy(out[k], y[k]))


def test_validation_keeps_the_class_weights_and_a_custom_loss_is_its_own():
    out, y = _batch()
    w = torch.tensor([1.0, 2.0, 0.5, 1.0])
    loss = MemberLoss("classification", torch.tensor([[0.1], [0.1]]), w).for_validation()
    torch.testing.assert_close(loss(out, y)[0], F.cross_entropy(out[0], y[0], weight=w))
    custom = CustomLoss(lambda o, t: F.cross_entropy(o, t))
    assert custom.for_validation() is custom
