"""Built-in small talk: in every model unless the knowledge base replaces it or settings disable it."""

from chatbot.smalltalk import builtin, builtin_answer, is_small_talk, with_small_talk


def test_the_built_in_intents_cover_what_support_chats_receive() -> None:
    slugs = set(builtin())
    for needed in ["greeting", "thanks", "goodbye", "bot", "capabilities", "acknowledge", "never-mind"]:
        assert f"smalltalk-{needed}" in slugs
    assert all(is_small_talk(slug) for slug in slugs - {"talk-to-human"})
    assert not is_small_talk("track-order") and not is_small_talk("talk-to-human")


def test_training_examples_gain_small_talk() -> None:
    examples = with_small_talk([("where is my order", "track-order")])
    labels = {label for _, label in examples}
    assert "smalltalk-greeting" in labels and "track-order" in labels
    assert ("hello", "smalltalk-greeting") in examples


def test_a_knowledge_base_article_replaces_the_built_in_one() -> None:
    ours = [("hey, welcome to Acme", "smalltalk-greeting")]
    examples = with_small_talk(ours)
    assert [text for text, label in examples if label == "smalltalk-greeting"] == ["hey, welcome to Acme"]


def test_settings_disable_some_or_all_small_talk(settings) -> None:
    settings.TANDEM_SMALL_TALK_DISABLED = ["smalltalk-bot"]
    assert "smalltalk-bot" not in {label for _, label in with_small_talk([])}
    settings.TANDEM_SMALL_TALK_DISABLED = ["all"]
    assert {label for _, label in with_small_talk([("a", "b")])} == {"b", "talk-to-human"}


def test_every_model_knows_requests_for_a_person_unless_the_knowledge_base_has_its_own() -> None:
    assert "talk-to-human" in {label for _, label in with_small_talk([("where is my order", "track-order")])}
    ours = with_small_talk([("get me a human", "talk-to-human")])
    assert [text for text, label in ours if label == "talk-to-human"] == ["get me a human"]


def test_are_you_a_bot_is_answered_honestly_with_the_way_to_a_person() -> None:
    answer = builtin_answer("smalltalk-bot")
    assert answer is not None and "automated" in answer and "person" in answer
