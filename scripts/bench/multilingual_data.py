# ruff: noqa: RUF001  (Chinese text uses full-width commas)
"""A generated multilingual corpus: needles and paraphrases in six languages among filler.

Why generated: no multilingual memory benchmark ships with a licence we can vendor, and a
corpus whose answers are known by construction cannot be tuned to by accident. The same
arguments give the same corpus everywhere (``random.Random(seed)``, no model, no file).

Each language (``LANGUAGES``: en, de, es, fr, ja, zh) has facts written by hand, each with
three questions in that language:

- ``needle``: the question repeats the fact's key words (inflected differently where the
  language inflects: "Schwestern" / "Schwester").
- ``paraphrase``: the question asks with other words (mostly a dense-retrieval task).
- ``cross``: an English question about a non-English fact (only the dense half can bridge
  languages), one per non-English fact.

``generate(filler=n)`` returns the facts plus ``n`` filler messages per language drawn from
the same everyday topics, so BM25 meets common words of every language.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["LANGUAGES", "Fact", "Query", "generate"]

LANGUAGES = ("en", "de", "es", "fr", "ja", "zh")


@dataclass(frozen=True)
class Fact:
    fact_id: str
    language: str
    text: str


@dataclass(frozen=True)
class Query:
    fact_id: str
    language: str
    kind: str  # needle | paraphrase | cross
    text: str


# (fact, needle question, paraphrase question, English cross-lingual question)
_FACTS: dict[str, list[tuple[str, str, str, str]]] = {
    "en": [
        (
            "My sister Sakura visits us from Osaka every June.",
            "when does my sister Sakura visit",
            "which relative comes over in early summer",
            "",
        ),
        (
            "I keep the spare house key under the blue flower pot.",
            "where is the spare house key",
            "how do I get in if I lose my keys",
            "",
        ),
        (
            "Our dentist, Dr. Okafor, moved her practice to Elm Street.",
            "where did Dr. Okafor move her practice",
            "new address of the tooth doctor",
            "",
        ),
        (
            "I am allergic to penicillin, it gives me hives.",
            "which antibiotic am I allergic to",
            "what medicine should doctors avoid giving me",
            "",
        ),
        (
            "The wifi password at the cabin is maplesyrup42.",
            "cabin wifi password",
            "how to get online at the holiday house",
            "",
        ),
    ],
    "de": [
        (
            "Meine Schwestern besuchen uns jedes Jahr im Juni aus Hamburg.",
            "wann besucht mich meine Schwester",
            "welche Verwandten kommen im Frühsommer vorbei",
            "when do my sisters visit",
        ),
        (
            "Den Ersatzschlüssel verstecke ich unter dem blauen Blumentopf.",
            "wo liegt der Ersatzschlüssel",
            "wie komme ich rein, wenn ich mich aussperre",
            "where is the spare key hidden",
        ),
        (
            "Unsere Zahnärztin hat ihre Praxis in die Lindenstraße verlegt.",
            "wohin hat die Zahnärztin ihre Praxis verlegt",
            "neue Adresse der Zahnarztpraxis",
            "where did the dentist move",
        ),
        (
            "Ich bin allergisch gegen Penicillin, ich bekomme davon Ausschlag.",
            "gegen welches Antibiotikum bin ich allergisch",
            "welches Medikament verträgt mein Körper nicht",
            "which antibiotic am I allergic to",
        ),
        (
            "Mein Bruder arbeitet seit März als Koch in einem Restaurant in Wien.",
            "als was arbeitet mein Bruder",
            "welchen Beruf hat mein Geschwister in Österreich",
            "what is my brother's job in Vienna",
        ),
    ],
    "es": [
        (
            "Mis hermanas nos visitan desde Sevilla cada junio.",
            "cuándo nos visita mi hermana",
            "qué familiares vienen a principios del verano",
            "when do my sisters visit",
        ),
        (
            "Guardo la llave de repuesto debajo de la maceta azul.",
            "dónde está la llave de repuesto",
            "cómo entro si pierdo las llaves",
            "where is the spare key",
        ),
        (
            "Nuestra dentista trasladó su consulta a la calle Mayor.",
            "adónde trasladó la dentista su consulta",
            "nueva dirección de la clínica dental",
            "where did the dentist move her office",
        ),
        (
            "Soy alérgico a la penicilina, me provoca urticaria.",
            "a qué antibiótico soy alérgico",
            "qué medicamento no debo tomar",
            "which antibiotic am I allergic to",
        ),
        (
            "Mi hermano trabaja como cocinero en un restaurante de Valencia desde marzo.",
            "de qué trabaja mi hermano",
            "cuál es la profesión de mi familiar en Valencia",
            "what is my brother's job",
        ),
    ],
    "fr": [
        (
            "Mes sœurs nous rendent visite depuis Lyon chaque année en juin.",
            "quand ma sœur nous rend-elle visite",
            "quels proches viennent au début de l'été",
            "when do my sisters visit",
        ),
        (
            "Je cache la clé de secours sous le pot de fleurs bleu.",
            "où est la clé de secours",
            "comment entrer si je perds mes clés",
            "where is the spare key",
        ),
        (
            "Notre dentiste a déménagé son cabinet rue Victor Hugo.",
            "où la dentiste a-t-elle déménagé son cabinet",
            "nouvelle adresse du cabinet dentaire",
            "where did the dentist move",
        ),
        (
            "Je suis allergique à la pénicilline, elle me donne de l'urticaire.",
            "à quel antibiotique suis-je allergique",
            "quel médicament dois-je éviter",
            "which antibiotic am I allergic to",
        ),
        (
            "Mon frère travaille comme cuisinier dans un restaurant à Bordeaux depuis mars.",
            "quel travail fait mon frère",
            "quelle est la profession de mon frère à Bordeaux",
            "what is my brother's job",
        ),
    ],
    "ja": [
        (
            "妹のさくらは毎年六月に大阪から遊びに来ます。",
            "妹はいつ来ますか",
            "初夏に訪ねてくる家族は誰",
            "when does my younger sister visit",
        ),
        (
            "合鍵は青い植木鉢の下に隠してあります。",
            "合鍵はどこにありますか",
            "鍵をなくしたらどうやって家に入る",
            "where is the spare key",
        ),
        (
            "歯医者さんは駅前の新しいビルに移転しました。",
            "歯医者はどこに移転しましたか",
            "歯科の新しい住所",
            "where did the dentist move",
        ),
        (
            "私はペニシリンにアレルギーがあって、じんましんが出ます。",
            "どの抗生物質にアレルギーがありますか",
            "飲んではいけない薬は何",
            "which antibiotic am I allergic to",
        ),
        (
            "兄は三月から京都のレストランで料理人として働いています。",
            "兄の仕事は何ですか",
            "京都で働く家族の職業",
            "what is my brother's job",
        ),
    ],
    "zh": [
        (
            "我妹妹每年六月从上海来看我们。",
            "我妹妹什么时候来",
            "初夏来拜访的亲戚是谁",
            "when does my sister visit",
        ),
        (
            "备用钥匙藏在蓝色花盆下面。",
            "备用钥匙在哪里",
            "丢了钥匙怎么进门",
            "where is the spare key",
        ),
        (
            "我们的牙医把诊所搬到了人民路。",
            "牙医把诊所搬到哪里了",
            "牙科的新地址",
            "where did the dentist move",
        ),
        (
            "我对青霉素过敏，会起荨麻疹。",
            "我对哪种抗生素过敏",
            "我不能吃什么药",
            "which antibiotic am I allergic to",
        ),
        (
            "我哥哥从三月起在北京一家餐厅当厨师。",
            "我哥哥做什么工作",
            "在北京工作的家人是什么职业",
            "what is my brother's job",
        ),
    ],
}

_FILLER: dict[str, list[str]] = {
    "en": [
        "I had pasta for lunch today.",
        "The weather was rainy all week.",
        "We watched a movie about space last night.",
        "My team finished the quarterly report.",
        "I went for a long run in the park.",
        "The train was late again this morning.",
        "We are planning a trip to the mountains.",
        "I started reading a new novel.",
        "The neighbours painted their fence green.",
        "I need to buy groceries tomorrow.",
    ],
    "de": [
        "Heute gab es Nudeln zum Mittagessen.",
        "Das Wetter war die ganze Woche regnerisch.",
        "Gestern Abend haben wir einen Film über den Weltraum gesehen.",
        "Mein Team hat den Quartalsbericht fertiggestellt.",
        "Ich war lange im Park joggen.",
        "Der Zug hatte heute Morgen wieder Verspätung.",
        "Wir planen eine Reise in die Berge.",
        "Ich habe einen neuen Roman angefangen.",
        "Die Nachbarn haben ihren Zaun grün gestrichen.",
        "Morgen muss ich Lebensmittel einkaufen.",
    ],
    "es": [
        "Hoy comí pasta al mediodía.",
        "Llovió toda la semana.",
        "Anoche vimos una película sobre el espacio.",
        "Mi equipo terminó el informe trimestral.",
        "Salí a correr un buen rato por el parque.",
        "El tren volvió a llegar tarde esta mañana.",
        "Estamos planeando un viaje a la montaña.",
        "Empecé a leer una novela nueva.",
        "Los vecinos pintaron la valla de verde.",
        "Mañana tengo que hacer la compra.",
    ],
    "fr": [
        "J'ai mangé des pâtes ce midi.",
        "Il a plu toute la semaine.",
        "Hier soir nous avons regardé un film sur l'espace.",
        "Mon équipe a terminé le rapport trimestriel.",
        "J'ai couru longtemps dans le parc.",
        "Le train était encore en retard ce matin.",
        "Nous préparons un voyage à la montagne.",
        "J'ai commencé un nouveau roman.",
        "Les voisins ont peint leur clôture en vert.",
        "Demain je dois faire les courses.",
    ],
    "ja": [
        "今日のお昼はパスタを食べました。",
        "今週はずっと雨でした。",
        "昨日の夜は宇宙の映画を見ました。",
        "チームで四半期の報告書を仕上げました。",
        "公園で長い時間走りました。",
        "今朝も電車が遅れました。",
        "山への旅行を計画しています。",
        "新しい小説を読み始めました。",
        "近所の人が塀を緑に塗りました。",
        "明日は食料品を買いに行かないと。",
    ],
    "zh": [
        "我今天中午吃了意大利面。",
        "这周一直在下雨。",
        "昨晚我们看了一部关于太空的电影。",
        "我的团队完成了季度报告。",
        "我在公园跑了很久。",
        "今天早上火车又晚点了。",
        "我们在计划去山里旅行。",
        "我开始读一本新小说。",
        "邻居把篱笆刷成了绿色。",
        "明天我得去买菜。",
    ],
}

_VARIATIONS: dict[str, list[str]] = {
    "en": ["Also, ", "By the way, ", "Today ", "", "Honestly, "],
    "de": ["Übrigens: ", "Außerdem ", "Heute: ", "", "Ehrlich gesagt: "],
    "es": ["Por cierto, ", "Además, ", "Hoy: ", "", "La verdad, "],
    "fr": ["Au fait, ", "En plus, ", "Aujourd'hui : ", "", "Franchement, "],
    "ja": ["ところで、", "あと、", "今日は", "", "正直、"],
    "zh": ["对了，", "另外，", "今天", "", "说实话，"],
}


def generate(*, seed: int = 16, filler: int = 40) -> tuple[list[Fact], list[Fact], list[Query]]:
    """(facts, filler messages, queries); ``filler`` messages per language."""
    rng = random.Random(seed)
    facts: list[Fact] = []
    queries: list[Query] = []
    for language in LANGUAGES:
        for index, (text, needle, paraphrase, cross) in enumerate(_FACTS[language]):
            fact_id = f"{language}-{index}"
            facts.append(Fact(fact_id, language, text))
            queries.append(Query(fact_id, language, "needle", needle))
            queries.append(Query(fact_id, language, "paraphrase", paraphrase))
            if cross:
                queries.append(Query(fact_id, "en", "cross", cross))
    noise: list[Fact] = []
    for language in LANGUAGES:
        base = _FILLER[language]
        for index in range(filler):
            prefix = rng.choice(_VARIATIONS[language])
            text = prefix + base[index % len(base)]
            noise.append(Fact(f"{language}-filler-{index}", language, text))
    rng.shuffle(noise)
    return facts, noise, queries
