"""A generated chat corpus with needles whose relevant message is known by construction.

Why: LongMemEval is one conversation style (long assistant answers, facts in the user's
words) and takes ten minutes; the product's tests need a retrieval check that runs in
seconds, covers what people search their memory for, and cannot be tuned to by accident
because every answer is known exactly. ``generate(seed)`` builds the same corpus for the same
arguments on every machine (``random.Random(seed)`` only, no model, no data file).

Conversations are user/assistant exchanges of everyday filler (work, food, travel, sport,
family) with the needle facts placed among them. Kinds of needle (``KINDS``), each with one
relevant message:

- ``unique_token``: a message holds one unique code (``QUOKKA3fa9b2c1d4e5``); the query is
  the code alone.
- ``name``: a two-word name that occurs once as a pair, while each word alone also occurs in
  filler; the query is the name alone.
- ``number``: a unique number (a locker code, an invoice); the query asks for it by the
  number.
- ``rare_word``: a word used once in the corpus, asked about in a short question.
- ``paraphrase``: a fact asked about with other words (the query shares no content word).
- ``assistant_fact``: the answer is in the assistant's words only; the question the user
  asked at the time does not hold the query's key words.
- ``dated``: the same activity on several dates; the query names the activity and a relative
  time ("last weekend", "two weeks ago", "yesterday", "in March") that only one of them fits,
  resolved against the query's time (``Needle.query_time``).

Timestamps: conversations are spread over the 200 days before ``NOW`` (Wednesday 2026-06-17,
12:00 UTC); messages of a conversation are two minutes apart.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

__all__ = ["KINDS", "NOW", "Conversation", "Corpus", "Needle", "Turn", "generate"]

NOW = datetime(2026, 6, 17, 12, 0, tzinfo=UTC)  # a Wednesday
DAY = 86400.0
KINDS = (
    "unique_token",
    "name",
    "number",
    "rare_word",
    "paraphrase",
    "assistant_fact",
    "dated",
)


@dataclass(frozen=True)
class Turn:
    role: str
    text: str
    timestamp: float
    message_id: str


@dataclass(frozen=True)
class Conversation:
    conversation_id: str
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Needle:
    """One query and the message that answers it (``message_id``)."""

    kind: str
    query: str
    message_id: str
    query_time: datetime  # aware (UTC): the same days on every machine


@dataclass(frozen=True)
class Corpus:
    conversations: tuple[Conversation, ...]
    needles: tuple[Needle, ...]

    @property
    def messages(self) -> int:
        return sum(len(c.turns) for c in self.conversations)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST = _words(
    "Marta Jonas Priya Tomasz Aiko Lena Omar Sofia Mateo Ingrid Ravi Chloe Felix Nadia Hugo "
    "Yara Elena Kofi Mira Anton"
)
LAST = _words(
    "Kowalczyk Lindqvist Okafor Tanaka Moreau Brennan Castillo Novak Haddad Ferreira Sato "
    "Jensen Albrecht Rossi Nakamura Dubois Petrov Quinn Varga Mensah"
)
PLACES = _words(
    "Lisbon Porto Oslo Bergen Kyoto Osaka Lyon Seville Krakow Gdansk Tallinn Riga Dublin "
    "Galway Turin Verona Ghent Bruges Graz Split"
)
FOODS = _words(
    "risotto ramen tacos lasagna curry paella dumplings pancakes goulash falafel sushi "
    "gnocchi chili burritos pho moussaka"
)
TEAMS = _words("design finance support research logistics marketing platform legal")
WEEKDAYS = _words("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")

USER_FILLER = (
    "I had lunch with {first} today and we talked about the {team} reorganisation.",
    "Work was busy again, the {team} team wants the report by {weekday}.",
    "I'm thinking of cooking {food} tonight, any tips?",
    "We might visit {place} this summer if the flights are cheap.",
    "My knee hurts a bit after the run yesterday.",
    "I finally finished the book {first} lent me.",
    "Can you remind me how long to boil eggs for a soft yolk?",
    "The weather has been grey all week, I miss the sun.",
    "I want to start going to the gym three times a week.",
    "My sister called, she is doing well in {place}.",
    "I spent the evening cleaning the kitchen and sorting the mail.",
    "Do you think {food} freezes well?",
    "The meeting with {last} ran over by an hour.",
    "I need a gift idea for {first}'s birthday.",
    "We watched a documentary about the ocean last night.",
    "My train was delayed by twenty minutes this morning.",
    "I'm trying to drink less coffee, it's hard.",
    "I planted tomatoes and basil on the balcony.",
    "What's a good stretch for a stiff lower back?",
    "Our neighbour's dog barked all night again.",
    "I booked a table for {number2} people on {weekday}.",
    "The {team} budget review is moved to room {number2}.",
    "I have to renew my passport before the trip to {place}.",
    "Thinking about learning to bake bread this winter.",
)
ASSISTANT_FILLER = (
    "That sounds like a full day. It can help to write down the two or three things that "
    "matter most tomorrow and leave the rest for later in the week.",
    "A simple approach works well: prepare everything before you start cooking, keep the "
    "heat moderate, and taste as you go so you can adjust the seasoning.",
    "Travel in the shoulder season is often cheaper and less crowded; booking a few weeks "
    "ahead and staying flexible on dates usually gives the best prices.",
    "If the pain persists for more than a few days or gets worse, it would be wise to see a "
    "doctor or a physiotherapist to rule out anything serious.",
    "Good habits stick better when they are small and specific, for example a fixed time "
    "and place, and when you track them for the first few weeks.",
    "Many people find that a short walk outside in daylight improves their mood, even on "
    "cloudy days, and it also helps with sleep.",
    "It's thoughtful of you to plan ahead. Something personal, like an experience you can "
    "share together, is often remembered longer than an object.",
    "Most cooked dishes keep for two to three months in the freezer if you cool them "
    "quickly and store them in airtight containers.",
    "Delays are frustrating. If it happens often, it may be worth checking whether an "
    "earlier connection or a different route is more reliable.",
    "Herbs like basil need plenty of sun and regular watering, while tomatoes benefit from "
    "support as they grow and from feeding once they start to flower.",
)

PARAPHRASES = (
    ("I'm allergic to peanuts, so I always skip satay.", "which food makes me sick"),
    ("My daughter Wren started kindergarten on Monday.", "when did my child begin school"),
    ("I drive a green 2014 Subaru Outback.", "what car do I own"),
    ("Our wedding anniversary is on the ninth of October.", "when did I get married"),
    ("I'm learning to play the cello with an online teacher.", "which instrument am I studying"),
    ("My landlord raised the rent by eighty euros.", "how much more do I pay for housing"),
    ("I take the number 12 tram to the office every day.", "how do I commute to work"),
    ("I've been vegetarian since university.", "do I eat meat"),
    ("My grandmother turns ninety-five in August.", "how old is my nan"),
    ("I sprained my ankle playing basketball.", "what injury did I get"),
    ("We adopted a grey tabby kitten called Smudge.", "what pet did we get"),
    ("I switched my phone contract to a cheaper provider.", "did I change mobile carrier"),
    ("My brother lives in Toronto with his wife.", "where is my sibling based"),
    ("I passed my driving test on the second attempt.", "did I get my licence"),
    ("I can't stand horror films, they give me nightmares.", "what movies do I dislike"),
    ("The plumber fixed the leaking boiler for 140 euros.", "how much was the heating repair"),
    ("I'm saving up for a deposit on a flat.", "what am I putting money aside for"),
    ("My favourite painter is Vermeer.", "which artist do I like best"),
    ("I run five kilometres every Sunday morning.", "how often do I go jogging"),
    ("I'm afraid of flying, so I take the train when I can.", "why do I avoid planes"),
    ("My doctor told me to cut down on salt.", "what did the physician advise about my diet"),
    ("I volunteer at the food bank on Thursdays.", "where do I do charity work"),
    ("We repainted the living room a pale blue.", "what colour are our lounge walls"),
    ("I lost my wallet on the bus last month.", "where did I misplace my purse"),
    ("My team won the pub quiz with a score of 41.", "how did we do at trivia night"),
    ("I quit smoking three years ago.", "do I still use cigarettes"),
    ("I'm lactose intolerant, so I buy oat milk.", "which dairy problem do I have"),
    ("My son is obsessed with dinosaurs at the moment.", "what is my boy interested in"),
    ("I had my wisdom teeth removed in spring.", "what dental surgery did I have"),
    ("Our flat is on the fourth floor with no lift.", "how many stairs do I climb at home"),
)

ASSISTANT_FACTS = (
    (
        "Can you recommend a book about the history of maps?",
        "Try 'On the Map' by Simon Garfield, an entertaining history of cartography.",
        "who wrote the cartography history you suggested",
    ),
    (
        "What should I plant in a shady corner of the garden?",
        "Hostas and ferns thrive in shade; astilbe adds colour from June to August.",
        "which shade plants did you say add colour",
    ),
    (
        "How do I get rid of limescale in the kettle?",
        "Boil a solution of half water and half white vinegar, then rinse twice.",
        "what vinegar mixture did you suggest",
    ),
    (
        "Which museum should I see first in Amsterdam?",
        "Start with the Rijksmuseum: the Night Watch gallery is quieter before ten.",
        "when is the Night Watch gallery quiet",
    ),
    (
        "What is a good stretch before running?",
        "Do leg swings and walking lunges, ten of each; save static hamstring holds for after.",
        "how many lunges before a jog",
    ),
    (
        "Can you suggest a board game for four adults?",
        "Codenames works well for four; Azul is a calmer tile-laying alternative.",
        "what was the tile-laying one",
    ),
    (
        "How long should I steep green tea?",
        "Two minutes at about 80 degrees Celsius; hotter water makes it bitter.",
        "how many degrees Celsius for steeping",
    ),
    (
        "What can I cook with leftover rice?",
        "Make arancini: roll the rice around mozzarella, bread it, and fry until golden.",
        "the fried cheese-filled balls you described",
    ),
    (
        "Which laptop is good for photo editing on a budget?",
        "The Lenovo Yoga Slim 7 has an accurate OLED screen for its price.",
        "which OLED notebook did you recommend",
    ),
    (
        "What's a good podcast about economics?",
        "Planet Money explains economic ideas in twenty-minute episodes.",
        "the show with twenty-minute episodes",
    ),
    (
        "How do I care for a cast iron pan?",
        "Dry it on the hob, then rub in a thin layer of flaxseed oil while warm.",
        "which oil for seasoning the skillet",
    ),
    (
        "Which wine goes with mushroom risotto?",
        "A Pinot Noir from Burgundy matches the earthy flavour well.",
        "the Burgundy red you paired with the rice dish",
    ),
    (
        "What is the quickest way to learn touch typing?",
        "Practise fifteen minutes daily on Keybr, which adapts to your weakest letters.",
        "which website adapts to weak letters",
    ),
    (
        "How do I keep basil alive indoors?",
        "Give it a south-facing window, water at the base, and pinch off flower buds.",
        "what to do with the flower buds",
    ),
    (
        "Can you suggest a hike near Bergen?",
        "Walk up Mount Ulriken with the cable car back down; allow about three hours.",
        "which mountain has the cable car",
    ),
    (
        "What's a good gift for a coffee lover?",
        "An AeroPress with a hand grinder from Timemore makes a thoughtful set.",
        "which grinder brand did you mention",
    ),
    (
        "How should I store fresh ginger?",
        "Peel it and freeze it whole; grate it straight from the freezer.",
        "peel and freeze it whole, which root was that",
    ),
    (
        "What's the best time to see the northern lights in Norway?",
        "Between late September and March, ideally around Tromso on a clear night.",
        "which town for the aurora",
    ),
    (
        "How do I fix a squeaky door hinge?",
        "Lift the pin, coat it with petroleum jelly, and tap it back in.",
        "where does the petroleum jelly go",
    ),
    (
        "What should I read after Dune?",
        "Hyperion by Dan Simmons has the same scale and a clever frame story.",
        "the science fiction novel with a frame story",
    ),
)

RARE_WORDS = _words(
    "theremin sextant kombucha marzipan harpsichord taxidermy calligraphy bonsai accordion "
    "sourdough falconry terrarium metronome zither kintsugi macrame lacrosse gamelan "
    "origami tapestry dulcimer astrolabe gyotaku tangram kefir mandolin bagpipes "
    "orienteering topiary fretsaw"
)
RARE_FACTS = (
    "I bought a second-hand {word} at the flea market on {weekday}.",
    "My cousin got me into {word} and now I spend every evening on it.",
    "There is a {word} workshop in town I want to try next month.",
)
RARE_QUERIES = ("what did I say about {word}", "{word}", "tell me about my {word}")

NAME_FACTS = (
    "{first} {last} from the {team} team asked me to review the budget.",
    "I met {first} {last} at the conference in {place}.",
    "{first} {last} is taking over the {team} project next month.",
)
NUMBER_FACTS = (
    ("My new locker code at the gym is {n}.", "locker code {n}"),
    ("The invoice number for the repair was {n}.", "{n}"),
    ("Our booking reference for the ferry is {n}.", "booking {n}"),
)

DATED_ACTIVITIES = (
    ("I went climbing at the bouldering gym with {first}.", "climbing"),
    ("I had a check-up at the dentist.", "dentist"),
    ("We had dinner at the new Georgian restaurant.", "Georgian restaurant"),
    ("I went to a pottery class with {first}.", "pottery class"),
    ("I played tennis with {first} in the park.", "tennis"),
)
# The query's time phrase, and the day (before NOW) of the one copy of the activity it fits.
DATED_WINDOWS = (
    ("yesterday", date(2026, 6, 16)),
    ("last weekend", date(2026, 6, 13)),
    ("two weeks ago", date(2026, 6, 3)),
    ("in March", date(2026, 3, 15)),
)
DATED_DISTRACTOR_DAYS = (35, 50, 160)  # more copies of each activity, far from every window


def _timestamp(day_offset: float) -> float:
    return (NOW - timedelta(days=day_offset)).timestamp()


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.conversations: list[Conversation] = []
        self.needles: list[Needle] = []

    def slots(self) -> dict[str, str]:
        rng = self.rng
        return {
            "first": rng.choice(FIRST),
            "last": rng.choice(LAST),
            "place": rng.choice(PLACES),
            "food": rng.choice(FOODS),
            "team": rng.choice(TEAMS),
            "weekday": rng.choice(WEEKDAYS),
            "number2": str(rng.randint(2, 99)),
        }

    def filler_exchange(self) -> list[tuple[str, str]]:
        user = self.rng.choice(USER_FILLER).format(**self.slots())
        return [("user", user), ("assistant", self.rng.choice(ASSISTANT_FILLER))]

    def conversation(
        self,
        needle_turns: list[tuple[str, str]],
        day_offset: float,
        needle: tuple[str, str, int] | None,
    ) -> None:
        """Filler exchanges with ``needle_turns`` at a random exchange boundary.

        ``needle`` is (kind, query, index into needle_turns of the relevant message).
        """
        rng = self.rng
        exchanges = [self.filler_exchange() for _ in range(rng.randint(2, 5))]
        at = rng.randint(0, len(exchanges))
        turns_spec = [t for ex in exchanges[:at] for t in ex]
        first_needle = len(turns_spec)
        turns_spec += needle_turns
        turns_spec += [t for ex in exchanges[at:] for t in ex]
        cid = f"conv-{len(self.conversations):04d}"
        start = _timestamp(day_offset)
        turns = tuple(
            Turn(role, text, start + 120.0 * i, f"{cid}-m{i:02d}")
            for i, (role, text) in enumerate(turns_spec)
        )
        self.conversations.append(Conversation(cid, turns))
        if needle is not None:
            kind, query, index = needle
            self.needles.append(Needle(kind, query, turns[first_needle + index].message_id, NOW))

    def day(self) -> float:
        return self.rng.uniform(0.5, 200.0)


def generate(seed: int = 1, *, scale: int = 1, filler_conversations: int = 200) -> Corpus:
    """The corpus: ``scale`` rounds of every needle bank, plus filler conversations.

    ``scale=1`` makes 100 unique tokens, 40 names, 30 numbers, 30 rare words, 30 paraphrases,
    20 assistant facts and 20 dated needles; a test can pass ``filler_conversations`` lower.
    """
    rng = random.Random(seed)
    b = _Builder(rng)
    used_names: set[tuple[str, str]] = set()
    used_numbers: set[int] = set()
    for _ in range(scale):
        for _ in range(100):
            token = f"QUOKKA{rng.getrandbits(48):012x}"
            text = f"note number {rng.randint(1, 999)} mentions {token} today"
            b.conversation(
                [("user", text), ("assistant", "Noted.")], b.day(), ("unique_token", token, 0)
            )
        for _ in range(40):
            while (pair := (rng.choice(FIRST), rng.choice(LAST))) in used_names:
                pass
            used_names.add(pair)
            fact = rng.choice(NAME_FACTS).format(**{**b.slots(), "first": pair[0], "last": pair[1]})
            b.conversation(
                [("user", fact), ("assistant", rng.choice(ASSISTANT_FILLER))],
                b.day(),
                ("name", f"{pair[0]} {pair[1]}", 0),
            )
        for i in range(30):
            while (n := rng.randint(10_000, 99_999)) in used_numbers:
                pass
            used_numbers.add(n)
            fact, query = NUMBER_FACTS[i % len(NUMBER_FACTS)]
            b.conversation(
                [("user", fact.format(n=n)), ("assistant", "Got it, I'll remember that.")],
                b.day(),
                ("number", query.format(n=n), 0),
            )
        for i, word in enumerate(RARE_WORDS):
            fact = RARE_FACTS[i % len(RARE_FACTS)].format(word=word, **b.slots())
            b.conversation(
                [("user", fact), ("assistant", rng.choice(ASSISTANT_FILLER))],
                b.day(),
                ("rare_word", RARE_QUERIES[i % len(RARE_QUERIES)].format(word=word), 0),
            )
        for fact, query in PARAPHRASES:
            b.conversation(
                [("user", fact), ("assistant", rng.choice(ASSISTANT_FILLER))],
                b.day(),
                ("paraphrase", query, 0),
            )
        for question, answer, query in ASSISTANT_FACTS:
            b.conversation(
                [("user", question), ("assistant", answer)], b.day(), ("assistant_fact", query, 1)
            )
        _dated(b)
    for _ in range(filler_conversations):
        b.conversation([], b.day(), None)
    order = list(range(len(b.conversations)))
    return Corpus(tuple(b.conversations[i] for i in order), tuple(b.needles))


def _dated(b: _Builder) -> None:
    """Each activity on several days; the query's time phrase fits exactly one of them.

    The copies are days apart (NOW is a Wednesday, so "yesterday" is not part of "last
    weekend"); each needle's copy is at 15:00 on its day, the distractors at 07:12.
    """
    for activity, topic in DATED_ACTIVITIES:
        fact = activity.format(**b.slots())
        for days in DATED_DISTRACTOR_DAYS:
            b.conversation([("user", fact), ("assistant", "Sounds nice!")], days + 0.2, None)
        for phrase, day in DATED_WINDOWS:
            at = datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC)
            query = f"what happened when I went to the {topic} {phrase}"
            if topic in ("climbing", "tennis"):
                query = f"who was with me at {topic} {phrase}"
            b.conversation(
                [("user", fact), ("assistant", "Sounds nice!")],
                (NOW - at).total_seconds() / DAY,
                ("dated", query, 0),
            )
