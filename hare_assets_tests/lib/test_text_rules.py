"""Each D1 rule on texts built to trip it, and on texts it must leave alone."""

import pytest

from hare_assets.lib.profile import Boilerplate, CleanConfig, QualityRules
from hare_assets.lib.text_rules import (
    clean_document,
    cut_to_last_sentence,
    detokenize,
    mask_pii,
    quality_violation,
    strip_boilerplate,
    strip_links,
)

PROSE = (
    "The committee met on a wet Tuesday to discuss the state of the old harbour. "
    "Several members argued that the sea wall had to be repaired before the winter storms, "
    "and the treasurer agreed to look for the money in the reserve fund. "
    "A local historian reminded everyone that the wall was built with stone from the quarry on the hill, "
    "and that the same quarry could supply the repair. The meeting ended with a vote in favour of the plan, "
    "and the work is to begin in the spring when the weather improves."
)
CFG = CleanConfig()
RULES = QualityRules()


def test_good_prose_is_kept_unchanged():
    out = clean_document(PROSE, CFG, RULES)
    assert out.reason is None and out.text == PROSE and out.edits == []


def test_pii_is_masked_or_dropped():
    text = PROSE + " Write to jane.doe@example.org or call +1 415 555 0134 or (020) 7946 0018; server 192.0.2.44."
    masked, kinds = mask_pii(text)
    assert set(kinds) == {"email", "phone", "ip_address"}
    assert "<EMAIL>" in masked and "<PHONE>" in masked and "<IP_ADDRESS>" in masked and "example.org" not in masked
    assert clean_document(text, CFG, RULES).edits == ["pii_email", "pii_ip_address", "pii_phone"]
    dropped = clean_document(text, CFG.model_copy(update={"pii": "drop"}), RULES)
    assert dropped.reason == "personal_information"
    # years, scores and prices are not phone numbers
    assert mask_pii("In 1990-1995 the score was 3-1 and it cost 1,250 dollars.")[1] == []


def test_links_are_stripped_keeping_sentence_punctuation():
    text, n = strip_links("See https://example.com/a?b=1. Or www.example.org, or (http://x.y/z).")
    assert n == 3
    assert text == "See. Or, or."


def test_boilerplate_markers():
    text = "Header licence\n*** START OF THIS TEXT ***\nThe body.\n*** END OF THIS TEXT ***\nFooter licence\n"
    body, stripped = strip_boilerplate(text, Boilerplate(start=r"^\*\*\* START", end=r"^\*\*\* END"))
    assert stripped and body == "The body.\n"
    assert strip_boilerplate("no markers", Boilerplate(start="^X", end="^Y")) == ("no markers", False)


def test_detokenize_wikitext_and_agnews():
    assert detokenize(" = Robert Boulter = \n He had a guest @-@ starring role , in 2 @,@ 000 ( TV ) . \n", "wikitext") == (
        "Robert Boulter\nHe had a guest-starring role, in 2,000 (TV).\n"
    )
    assert detokenize("Apple #39;s shares rose\\to  #36;10 a share.", "agnews") == "Apple's shares rose to $10 a share."


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Just a heading here", "incomplete"),
        (PROSE + " And then the committee decided to", "incomplete"),
        ("Le comité s'est réuni un mardi pluvieux pour discuter de l'état du vieux port. Plusieurs membres ont "
         "soutenu que la digue devait être réparée avant les tempêtes d'hiver, et le trésorier a accepté de chercher "
         "l'argent dans le fonds de réserve. La séance s'est terminée par un vote.", "non_english"),
        ("the best price and the best deal " * 30 + ".", "top_2gram_repetition"),
        (PROSE + "\n" + "\n".join(["Click here to subscribe to our newsletter today."] * 12), "duplicate_lines"),
        ("Home | About | Contact | Login | Register | Shop | Cart | Help | FAQ | Blog | News | Jobs | Press | "
         "Terms | Privacy | Sitemap | Careers | Partners | Events | Store | Forum | Wiki | Docs | API | Status | "
         "Support | Team | Mission | Values | Investors | Legal | Cookies | Settings | Account | Orders.", "alpha_words"),
        ("#### $$$ *** #### " * 20 + "the and of to.", "symbol_ratio"),
        (PROSE + " Lorem ipsum dolor sit amet, consectetur adipiscing elit.", "lorem_ipsum"),
        (PROSE + " The page showed function f() { return 1; } to us.", "curly_bracket"),
        ("A short note that is complete and says very little at all.", "too_few_words"),
    ],
)
def test_removal_rules_fire(text, reason):
    out = clean_document(text, CFG, RULES)
    assert out.reason == reason, out.detail
    assert out.detail


def test_disabled_rule_and_overrides():
    text = PROSE + " The page showed function f() { return 1; } to us."
    assert clean_document(text, CFG, RULES.model_copy(update={"reject_curly_bracket": False})).reason is None
    short = "A short note that is complete and says very little at all."
    assert quality_violation(short, RULES.model_copy(update={"min_words": 5})) is None


def test_long_document_loses_only_its_dangling_last_line():
    long_text = "\n".join([PROSE] * 4).replace("The committee", "A committee", 1)
    long_text = "\n\n".join(f"Paragraph {i}. {PROSE}" for i in range(6)) + "\nTHE END"
    out = clean_document(long_text, CFG, RULES.model_copy(update={"max_duplicate_ngram_char_ratio": {}, "max_top_ngram_char_ratio": {}, "max_duplicate_line_char_ratio": None, "max_duplicate_paragraph_char_ratio": None, "max_duplicate_paragraph_ratio": None, "max_duplicate_line_ratio": None}))
    assert out.reason is None
    assert out.edits == ["dangling_tail"] and not out.text.endswith("THE END")


def test_one_line_wire_item_ending_in_ellipsis_is_not_an_ellipsis_list():
    item = "GENEVA (Wire) - The talks on the new trade pact resumed on Monday with both sides hopeful of a deal before the end of the month, officials said..."
    assert quality_violation(item, RULES.model_copy(update={"min_words": 10})) is None
    listing = "\n".join(f"Read story {i} about the match and the players from last night in the old city..." for i in range(4))
    assert quality_violation(listing, RULES.model_copy(update={"min_words": 5, "max_duplicate_line_ratio": None, "max_duplicate_line_char_ratio": None, "max_top_ngram_char_ratio": {}, "max_duplicate_ngram_char_ratio": {}}))[0] == "ellipsis_lines"


def test_a_reply_cut_at_its_token_cap_keeps_its_finished_sentences():
    assert cut_to_last_sentence('Bees dance. They said "go west." Then the hive moved to') == 'Bees dance. They said "go west."'
    assert cut_to_last_sentence("It costs 3.5 euros. The price of a") == "It costs 3.5 euros."  # a decimal point ends nothing
    assert cut_to_last_sentence("Is it true? Yes! And so") == "Is it true? Yes!"
    assert cut_to_last_sentence("no sentence ends in this fragment") is None
