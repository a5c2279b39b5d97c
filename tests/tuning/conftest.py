"""The trained model seen through a folder of these tests' own (the operating point is written there, not
beside the model other tests share), and a known set of agents' labels."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone

from chatbot.policy import OPERATING_POINT_FILE
from support.conversations.models import Conversation, Message, Role
from support.review.models import Label, LabelKind
from support.tuning import curve

# Phrasings the demo knowledge base does not have, and what answers them ("": no article does).
KNOWN = [
    ("when will my parcel arrive", "track-order"),
    ("i need to swap the size on my order", "change-order"),
    ("please cancel the order i just made", "cancel-order"),
    ("one of the things i ordered is not in the box", "missing-items"),
    ("the box had somebody else's item in it", "wrong-item"),
    ("my delivery still hasn't come and it's a week late", "late-delivery"),
    ("i never got an email confirming my purchase", "order-confirmation-email"),
    ("what does shipping cost", "delivery-costs"),
    ("can you deliver to france", "international-delivery"),
    ("how do i send back a jumper", "how-to-return"),
    ("when do i get my money back for the return", "refund-timing"),
    ("my payment keeps getting rejected", "card-declined"),
    ("can i split the payment into monthly chunks", "pay-later-instalments"),
    ("i can't remember my password", "reset-password"),
    ("my discount code doesn't work at checkout", "promo-code-not-working"),
    ("how do i check what's left on a gift card", "gift-card-balance"),
    ("is there a fee if i return stuff", "return-costs"),
    ("the lamp i bought arrived smashed", "damaged-on-arrival"),
    ("what's the capital of australia", ""),
    ("can you recommend a good film", ""),
    ("my neighbour's dog keeps barking", ""),
    ("write me a poem about cheese", ""),
    ("how tall is mount everest", ""),
    ("which football team should i support", ""),
]


@pytest.fixture(scope="module")
def shared_model_dir(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tuned-model")
    for entry in trained_model_dir.iterdir():
        if entry.is_dir():
            (directory / entry.name).symlink_to(entry)
    shutil.copy(trained_model_dir / "current", directory / "current")
    return directory


@pytest.fixture
def model_dir(shared_model_dir: Path, knowledge_base: None) -> Iterator[Path]:
    (shared_model_dir / OPERATING_POINT_FILE).unlink(missing_ok=True)
    curve._cache.clear()
    with override_settings(TANDEM_SMALL_MODEL_DIR=shared_model_dir):
        yield shared_model_dir
    (shared_model_dir / OPERATING_POINT_FILE).unlink(missing_ok=True)


def label(text: str, article: str, spot_check: bool = False, given_by: User | None = None) -> Label:
    message = Message.objects.create(conversation=Conversation.objects.create(), role=Role.CUSTOMER, text=text)
    kind = LabelKind.ARTICLE if article else LabelKind.NOT_SUPPORT
    return Label.objects.create(
        message=message, kind=kind, article=article, spot_check=spot_check, given_by=given_by, given_at=timezone.now()
    )


@pytest.fixture
def known_labels(model_dir: Path) -> list[tuple[str, str]]:
    for number, (text, article) in enumerate(KNOWN):
        label(text, article, spot_check=number % 2 == 0)
    return KNOWN
