"""Which language a message is in, and when a guess is trusted."""

from chatbot.language import Guess, detect, message_language


def test_english_questions_are_english() -> None:
    for text in ["How do I reset my password?", "where is my parcel", "Can I get a VAT invoice for my order?"]:
        assert detect(text, "en").language == "en", text


def test_shouted_english_is_english() -> None:
    # A complaint from the CFPB's database: in its capitals the model took it for Nigerian Pidgin.
    text = (
        "THESE BUREAUS ARE FALSLEY REPORTING ALLEGED DEBT WHICH IS A FCDRA SECTION 807 VIOLATION ''15 USC 1692e ''. "
        "THE ALLEGED DEBT CAN NOT BE VERIFIED ANDI HAVE YET TO RECEIVE A REPONSE AFTER 30 DAYS WHICHN IS ANOTHER "
        "VIOLATION UNDER THE FCRA."
    )
    assert detect(text, "en").language == "en"


def test_a_long_enough_message_in_another_language_is_recognised_reliably() -> None:
    guess = detect("Bonjour, je voudrais changer l'adresse de livraison de ma commande", "en")
    assert guess.language == "fr" and guess.reliable
    assert detect("Wo ist meine Bestellung? Ich warte seit zwei Wochen", "en").language == "de"
    assert detect("我的订单什么时候到", "en").reliable


def test_a_short_message_does_not_flip_the_conversations_language() -> None:
    assert not detect("merci", "en").reliable
    assert not detect("ok", "en").reliable
    assert message_language(detect("ok", "en"), "fr", "en") == "fr"
    assert message_language(detect("merci", "en"), None, "en") == "en"


def test_a_reliable_guess_wins_over_the_conversations_language() -> None:
    assert message_language(Guess("de", 0.99, True), "fr", "en") == "de"
