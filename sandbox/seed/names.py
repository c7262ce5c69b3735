"""Name pools and name helpers for the sandbox data generator.

Display names come from several languages on purpose: the sync matches people by a normalised
name key, and Cyrillic, Polish diacritics, accents, apostrophes and umlauts are where naive
comparisons break. Usernames are ASCII transliterations, as Webitel logins usually are.
"""

from __future__ import annotations

import functools
import random
import re
import unicodedata

# language -> (male first names, female first names, surnames as "male/female" or one form)
POOLS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "en": ("James John Robert Michael William David Richard Thomas Daniel Matthew Anthony Mark "
           "Steven Paul Andrew Joshua Kevin Brian George Edward".split(),
           "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Nancy Lisa "
           "Emily Ashley Emma Olivia Sophie Hannah Grace Chloe".split(),
           "Smith Johnson Williams Brown Jones Miller Davis Wilson Anderson Taylor Thomas Moore "
           "Jackson Martin Lee Thompson White Harris Clark Lewis Walker Hall Young King Wright".split()),
    "uk": ("Олександр Андрій Дмитро Сергій Іван Микола Василь Юрій Богдан Тарас Остап Євген "
           "Григорій Максим Ярослав".split(),
           "Олена Марія Наталія Ірина Оксана Тетяна Юлія Ганна Катерина Світлана Людмила Соломія "
           "Дарина Ївга Зоряна".split(),
           "Шевченко Коваленко Бондаренко Ткаченко Кравченко Олійник Шевчук Поліщук Бойко "
           "Мельник Коваль Лисенко Гнатюк Савчук Марченко Руденко Їжак Гончаренко".split()),
    "ru": ("Алексей Дмитрий Сергей Михаил Николай Павел Артём Владимир Константин Григорий "
           "Фёдор Пётр".split(),
           "Анна Елена Ольга Наталья Татьяна Светлана Екатерина Ксения Юлия Дарья Алёна".split(),
           "Иванов/Иванова Смирнов/Смирнова Кузнецов/Кузнецова Попов/Попова Соколов/Соколова "
           "Лебедев/Лебедева Козлов/Козлова Новиков/Новикова Морозов/Морозова Волков/Волкова "
           "Соловьёв/Соловьёва Фёдоров/Фёдорова".split()),
    "pl": ("Łukasz Paweł Krzysztof Tomasz Piotr Michał Grzegorz Jakub Wojciech Mateusz Zbigniew "
           "Bartłomiej".split(),
           "Małgorzata Agnieszka Katarzyna Zofia Joanna Magdalena Aleksandra Żaneta Józefa "
           "Bożena Ewa".split(),
           "Nowak Wójcik Kowalczyk Woźniak Mazur Krawczyk Kaczmarek Zieliński/Zielińska "
           "Wiśniewski/Wiśniewska Dąbrowski/Dąbrowska Kowalski/Kowalska Lewandowski/Lewandowska "
           "Szymański/Szymańska Gałązka Błaszczyk Żółkiewski/Żółkiewska".split()),
    "es": ("José Juan Luis Carlos Javier Sergio Ángel Raúl Andrés Víctor Jesús Álvaro".split(),
           "María Lucía Sofía Carmen Ana Laura Marta Inés Begoña Ainhoa Nuria".split(),
           "García Fernández González Rodríguez López Martínez Sánchez Pérez Gómez Jiménez "
           "Núñez Muñoz Ibáñez Peña".split()),
    "fr": ("François Jérôme Stéphane Frédéric Gérard Rémi Hervé Benoît Théo Noël".split(),
           "Hélène Élodie Chloé Céline Émilie Gaëlle Zoé Léa Mégane Françoise".split(),
           "Lefèvre Dubois Côté Girard Bérubé Mercier Lévesque Gagné Fournier Thibault Benoît".split()),
    "ga": ("Seán Liam Ciarán Pádraig Cian Oisín Darragh Eoin Conor Rory".split(),
           "Aoife Niamh Siobhán Sinéad Caoimhe Saoirse Órla Róisín Clodagh Maeve".split(),
           ["O'Brien", "D'Arcy", "O'Sullivan", "O'Neill", "O'Connor", "O'Reilly", "Murphy", "Kelly",
            "Byrne", "Ó Súilleabháin", "Mac Giolla Phádraig"]),
    "de": ("Jürgen Björn Günther Jörg Lukas Maximilian Sören Uwe Klaus Dieter".split(),
           "Käthe Anneliese Hanna Ute Sabine Jördis Bärbel Monika Lea Jülide".split(),
           "Müller Schäfer Groß Köhler Weiß Schröder Möller Krüger Fuchs Bäcker Hoffmann Böhm".split()),
}
LANGUAGE_WEIGHTS = {"en": 30, "uk": 15, "ru": 10, "pl": 12, "es": 10, "fr": 8, "ga": 7, "de": 8}
_LANGS = list(LANGUAGE_WEIGHTS)
_LANG_CUM = []
_total = 0
for _lang in _LANGS:
    _total += LANGUAGE_WEIGHTS[_lang]
    _LANG_CUM.append(_total)

# Ukrainian-flavoured transliteration covering Russian letters too; ASCII output only.
_CYRILLIC = dict(zip(
    "абвгґдеєжзиіїйклмнопрстуфхцчшщьюяыэёъ",
    "a b v h g d e ye zh z y i yi y k l m n o p r s t u f kh ts ch sh shch _ yu ya y e yo _".split(),
))
_LATIN_EXTRA = {"ł": "l", "ß": "ss", "ø": "o", "æ": "ae", "đ": "d", "œ": "oe"}
_NOT_LOGIN = re.compile(r"[^a-z0-9]")
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=1 << 16)
def name_key(text: str) -> str:
    """The normalised comparison key of the sync rules: NFKC, case-folded, spaces collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@functools.lru_cache(maxsize=1 << 12)  # the inputs come from small pools
def ascii_login(text: str) -> str:
    """Lower-case ASCII letters and digits only: ``"Łukasz O'Brien"`` -> ``"lukaszobrien"``."""
    out = []
    for ch in text.lower():
        if ch in _CYRILLIC:
            out.append(_CYRILLIC[ch].strip("_"))
        elif ch in _LATIN_EXTRA:
            out.append(_LATIN_EXTRA[ch])
        else:
            out.append(unicodedata.normalize("NFKD", ch))
    return _NOT_LOGIN.sub("", "".join(out))


def person(rng: random.Random) -> tuple[str, str, str]:
    """A random ``(language, first, last)`` with gendered surnames agreeing with the first name."""
    lang = rng.choices(_LANGS, cum_weights=_LANG_CUM)[0]
    males, females, surnames = POOLS[lang]
    female = rng.random() < 0.5
    first = rng.choice(females if female else males)
    last = rng.choice(surnames)
    if "/" in last:
        male_form, female_form = last.split("/")
        last = female_form if female else male_form
    return lang, first, last


def stray_spaces(rng: random.Random, name: str) -> str:
    """The name with a leading, trailing or doubled inner space, as typed by a hurried admin."""
    kind = rng.randrange(3)
    if kind == 0:
        return " " + name
    if kind == 1:
        return name + " "
    return name.replace(" ", "  ", 1)


def login_for(first: str, last: str, rng: random.Random) -> str:
    """One plausible login built from a person's name (not yet made unique)."""
    f, l = ascii_login(first) or "user", ascii_login(last) or "user"
    roll = rng.random()
    if roll < 0.55:
        return f"{f}.{l}"
    if roll < 0.80:
        return f"{f[0]}.{l}"
    if roll < 0.92:
        return f"{f}{l[0]}"
    return f"{f}.{l}{rng.randint(1, 99)}"


class UniqueLogins:
    """Hands out logins unique case-insensitively, appending a counter on a clash."""

    def __init__(self, taken: set[str] | None = None) -> None:
        self.taken: set[str] = {t.lower() for t in (taken or set())}
        self._next: dict[str, int] = {}

    def claim(self, base: str) -> str:
        login = base.lower()
        if login in self.taken:
            n = self._next.get(login, 2)
            while f"{login}{n}" in self.taken:
                n += 1
            self._next[login] = n + 1
            login = f"{login}{n}"
        self.taken.add(login)
        return login


COMPANY_WORDS = ("Nova Atlas Orbit Vega Polar Delta Helix Lumen Terra Kite Aurora Granite Cedar "
                 "Harbor Summit").split()
COMPANY_SUFFIXES = ("Ltd", "LLC", "GmbH", "Sp. z o.o.", "S.L.", "SARL", "TOV", "Group", "Partners")
JOB_TITLES = ("Operator", "Senior operator", "Supervisor", "Sales manager", "Account manager",
              "Support engineer", "Team lead", "Quality analyst", "")
