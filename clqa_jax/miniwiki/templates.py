"""Per-language sentence templates for the mini encyclopedia and its question sets.

Template syntax: `{self}` / `{self:CASE}` is the article's own subject (not linked, as Wikipedia
does not link an article to itself); `[ROLE]` / `[ROLE:CASE]` is a link to the related entity in
that role; `{N}` a number, `{YEAR}` a year, `{PROF}` a profession word. CASE names a form that
`morphology.inflect` knows for the language.
"""
from __future__ import annotations

PROFESSIONS = {
    "writer": dict(en="writer", ar="كاتب", bn="লেখক", fi="kirjailija", ja="作家", ko="작가", ru="писатель", te="రచయిత"),
    "engineer": dict(en="engineer", ar="مهندس", bn="প্রকৌশলী", fi="insinööri", ja="技術者", ko="기술자", ru="инженер", te="ఇంజనీరు"),
    "director": dict(en="film director", ar="مخرج سينمائي", bn="চলচ্চিত্র পরিচালক", fi="elokuvaohjaaja", ja="映画監督", ko="영화 감독", ru="кинорежиссёр", te="సినిమా దర్శకుడు"),
    "composer": dict(en="composer", ar="ملحن", bn="সুরকার", fi="säveltäjä", ja="作曲家", ko="작곡가", ru="композитор", te="స్వరకర్త"),
    "poet": dict(en="poet", ar="شاعر", bn="কবি", fi="runoilija", ja="詩人", ko="시인", ru="поэт", te="కవి"),
    "painter": dict(en="painter", ar="رسام", bn="চিত্রশিল্পী", fi="taidemaalari", ja="画家", ko="화가", ru="художник", te="చిత్రకారుడు"),
}

# Sentence kind -> language -> template. The generator picks kinds per article from the facts.
SENTENCES: dict[str, dict[str, str]] = {
    # Country articles.
    "country_capital": dict(
        en="The capital of {self} is [capital].", ar="عاصمة {self} هي [capital].",
        bn="{self:gen} রাজধানী [capital]।", fi="{self:gen} pääkaupunki on [capital].",
        ja="{self}の首都は[capital]である。", ko="{self}의 수도는 [capital]이다.",
        ru="Столица {self:gen} — [capital].", te="{self} రాజధాని [capital]."),
    "country_river": dict(
        en="The [river] flows through {self}.", ar="يجري [river] في {self}.",
        bn="[river] {self:loc} প্রবাহিত হয়।", fi="[river] virtaa {self:loc}.",
        ja="[river]は{self}を流れる川である。", ko="[river:top] {self:obj} 흐르는 강이다.",
        ru="По территории {self:gen} протекает [river].", te="[river] {self:loc} ప్రవహిస్తుంది."),
    "country_city": dict(
        en="[city] is one of the major cities of {self}.", ar="[city] مدينة كبيرة أخرى في {self}.",
        bn="[city] {self:gen} আরেকটি বড় শহর।", fi="[city] on eräs {self:gen} suurista kaupungeista.",
        ja="[city]は{self}の主要都市の一つである。", ko="[city:top] {self}의 주요 도시 중 하나이다.",
        ru="[city] — один из крупных городов {self:gen}.", te="[city] {self:loc} ఒక పెద్ద నగరం."),
    "country_person": dict(
        en="[person] is one of the best-known people of {self}.", ar="[person] من أشهر أعلام {self}.",
        bn="[person] {self:gen} একজন বিখ্যাত ব্যক্তি।", fi="[person] on eräs {self:gen} tunnetuimmista henkilöistä.",
        ja="[person]は{self}の著名な人物の一人である。", ko="[person:top] {self}의 유명한 인물 중 한 명이다.",
        ru="[person] — один из известных людей {self:gen}.", te="[person] {self:loc} ప్రసిద్ధ వ్యక్తులలో ఒకరు."),
    # City articles.
    "city_capital": dict(
        en="{self} is the capital and largest city of [country].", ar="{self} هي عاصمة [country] وأكبر مدنها.",
        bn="{self} [country:gen] রাজধানী ও বৃহত্তম শহর।", fi="{self} on [country:gen] pääkaupunki ja suurin kaupunki.",
        ja="{self}は[country]の首都であり、最大の都市である。", ko="{self:top} [country]의 수도이자 최대 도시이다.",
        ru="{self} — столица и крупнейший город [country:gen].", te="{self} [country] రాజధాని మరియు అతిపెద్ద నగరం."),
    "city_in": dict(
        en="{self} is a city in [country].", ar="{self} مدينة في [country].",
        bn="{self} [country:gen] একটি শহর।", fi="{self} on kaupunki [country:loc].",
        ja="{self}は[country]の都市である。", ko="{self:top} [country]의 도시이다.",
        ru="{self} — город [country:loc].", te="{self} [country:loc] ఒక నగరం."),
    "city_river": dict(
        en="{self} lies on the banks of the [river].", ar="تقع {self} على ضفاف [river].",
        bn="{self} [river:gen] তীরে অবস্থিত।", fi="{self} sijaitsee [river:gen] rannalla.",
        ja="{self}は[river]のほとりに位置する。", ko="{self:top} [river] 강변에 위치한다.",
        ru="Город {self} расположен [river:on].", te="{self} [river] ఒడ్డున ఉంది."),
    "city_person": dict(
        en="[person] was born in {self}.", ar="ولد [person] في {self}.",
        bn="[person] {self:loc} জন্মগ্রহণ করেন।", fi="[person] syntyi {self:loc}.",
        ja="[person]は{self}で生まれた。", ko="[person:top] {self}에서 태어났다.",
        ru="[person] родился {self:loc}.", te="[person] {self:loc} జన్మించాడు."),
    "city_population": dict(
        en="{self} has a population of about {N} people.", ar="يبلغ عدد سكان {self} نحو {N} نسمة.",
        bn="{self:gen} জনসংখ্যা প্রায় {N} জন।", fi="{self:loc} asuu noin {N} ihmistä.",
        ja="{self}の人口は約{N}人である。", ko="{self}의 인구는 약 {N}명이다.",
        ru="Население {self:gen} составляет около {N} человек.", te="{self} జనాభా సుమారు {N}."),
    # River articles.
    "river_in": dict(
        en="The {self} is a river in [country].", ar="{self} نهر في [country].",
        bn="{self} [country:gen] একটি নদী।", fi="{self} on joki [country:loc].",
        ja="{self}は[country]を流れる川である。", ko="{self:top} [country:obj] 흐르는 강이다.",
        ru="{self} — река [country:loc].", te="{self} [country:loc] ప్రవహించే ఒక నది."),
    "river_length": dict(
        en="The {self} is about {N} kilometres long.", ar="يبلغ طول {self} نحو {N} كيلومتر.",
        bn="{self:gen} দৈর্ঘ্য প্রায় {N} কিলোমিটার।", fi="{self:gen} pituus on noin {N} kilometriä.",
        ja="{self}の長さは約{N}キロメートルである。", ko="{self}의 길이는 약 {N}킬로미터이다.",
        ru="Длина реки {self} составляет около {N} километров.", te="{self} పొడవు సుమారు {N} కిలోమీటర్లు."),
    "river_city": dict(
        en="[city] lies on the {self}.", ar="تقع [city] على {self}.",
        bn="[city] {self:gen} তীরে অবস্থিত।", fi="[city] sijaitsee {self:gen} rannalla.",
        ja="[city]は{self}のほとりに位置する。", ko="[city:top] {self} 강변에 위치한다.",
        ru="Город [city] расположен {self:on}.", te="[city] {self} ఒడ్డున ఉంది."),
    # Person articles.
    "person_nationality": dict(
        en="{self} (born {YEAR}) is a {PROF} from [country].", ar="{self} (ولد عام {YEAR}) {PROF} من [country].",
        bn="{self} (জন্ম {YEAR}) [country:gen] একজন {PROF}।", fi="{self} (s. {YEAR}) on [country:gen] kansalainen ja {PROF}.",
        ja="{self}（{YEAR}年生まれ）は[country]の{PROF}である。", ko="{self:top} {YEAR}년에 태어난 [country]의 {PROF}이다.",
        ru="{self} (род. {YEAR}) — {PROF} из [country:gen].", te="{self} (జననం {YEAR}) [country:dat] చెందిన ఒక {PROF}."),
    "person_born": dict(
        en="{self} was born in [born_in] in {YEAR}.", ar="ولد {self} في [born_in] عام {YEAR}.",
        bn="{self} {YEAR} সালে [born_in:loc] জন্মগ্রহণ করেন।", fi="{self} syntyi vuonna {YEAR} [born_in:loc].",
        ja="{self}は{YEAR}年に[born_in]で生まれた。", ko="{self:top} {YEAR}년 [born_in]에서 태어났다.",
        ru="{self} родился в {YEAR} году [born_in:loc].", te="{self} {YEAR}లో [born_in:loc] జన్మించాడు."),
}

# Question kind -> language -> template; `{x}` is the subject (plain text), the answer is a name
# or a year. These are the XOR-TyDi-style question sets.
QUESTIONS: dict[str, dict[str, str]] = {
    "capital": dict(
        en="What is the capital of {x}?", ar="ما هي عاصمة {x}؟", bn="{x:gen} রাজধানী কোথায়?",
        fi="Mikä on {x:gen} pääkaupunki?", ja="{x}の首都はどこですか？", ko="{x}의 수도는 어디인가?",
        ru="Какой город является столицей {x:gen}?", te="{x} రాజధాని ఏది?"),
    "city_country": dict(
        en="In which country is {x}?", ar="في أي دولة تقع {x}؟", bn="{x} কোন দেশে অবস্থিত?",
        fi="Missä maassa {x} sijaitsee?", ja="{x}はどの国にありますか？", ko="{x:top} 어느 나라에 있는가?",
        ru="В какой стране находится {x}?", te="{x} ఏ దేశంలో ఉంది?"),
    "birthplace": dict(
        en="Where was {x} born?", ar="أين ولد {x}؟", bn="{x} কোথায় জন্মগ্রহণ করেন?",
        fi="Missä {x} syntyi?", ja="{x}はどこで生まれましたか？", ko="{x:top} 어디에서 태어났는가?",
        ru="Где родился {x}?", te="{x} ఎక్కడ జన్మించాడు?"),
    "birth_year": dict(
        en="In what year was {x} born?", ar="في أي عام ولد {x}؟", bn="{x} কত সালে জন্মগ্রহণ করেন?",
        fi="Minä vuonna {x} syntyi?", ja="{x}は何年に生まれましたか？", ko="{x:top} 몇 년에 태어났는가?",
        ru="В каком году родился {x}?", te="{x} ఏ సంవత్సరంలో జన్మించాడు?"),
    "river_country": dict(
        en="Through which country does the {x} flow?", ar="في أي دولة يجري {x}؟", bn="{x} কোন দেশে প্রবাহিত হয়?",
        fi="Missä maassa {x} virtaa?", ja="{x}はどの国を流れていますか？", ko="{x:top} 어느 나라를 흐르는가?",
        ru="По какой стране протекает {x}?", te="{x} ఏ దేశంలో ప్రవహిస్తుంది?"),
}
