"""A small knowledge base of real entities with their names in the eight corpus languages.

The mini corpus generator (`generate.py`) renders these facts as encyclopedia articles. Names
are written the way each language's Wikipedia writes them. Finnish and Russian inflect names, so
the case forms the templates need (genitive, locative) are listed for real entities; synthetic
entities get them from the rules in `morphology.py`.
"""
from __future__ import annotations

import dataclasses

from clqa_jax.data import formats

LANGS = ("en",) + formats.XOR_LANGUAGES


@dataclasses.dataclass(frozen=True)
class Entity:
  """One article subject. `names[lang]` is the article title in that language."""
  key: str
  kind: str  # country | city | river | person
  names: dict[str, str]
  forms: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # lang -> case -> form
  country: str | None = None  # city, river: where it is; person: nationality
  capital: bool = False  # city: capital of its country
  river: str | None = None  # city: river it lies on
  born_in: str | None = None  # person
  year: int | None = None  # person: birth year
  profession: str | None = None  # person
  length_km: int | None = None  # river


def _n(en, ar, bn, fi, ja, ko, ru, te) -> dict[str, str]:
  return dict(en=en, ar=ar, bn=bn, fi=fi, ja=ja, ko=ko, ru=ru, te=te)


def _f(fi_gen, fi_loc, ru_gen, ru_loc) -> dict[str, dict[str, str]]:
  return {"fi": {"gen": fi_gen, "loc": fi_loc}, "ru": {"gen": ru_gen, "loc": ru_loc}}


REAL_ENTITIES: tuple[Entity, ...] = (
    # Countries.
    Entity("finland", "country", _n("Finland", "فنلندا", "ফিনল্যান্ড", "Suomi", "フィンランド", "핀란드", "Финляндия", "ఫిన్లాండ్"),
           _f("Suomen", "Suomessa", "Финляндии", "в Финляндии")),
    Entity("japan", "country", _n("Japan", "اليابان", "জাপান", "Japani", "日本", "일본", "Япония", "జపాన్"),
           _f("Japanin", "Japanissa", "Японии", "в Японии")),
    Entity("russia", "country", _n("Russia", "روسيا", "রাশিয়া", "Venäjä", "ロシア", "러시아", "Россия", "రష్యా"),
           _f("Venäjän", "Venäjällä", "России", "в России")),
    Entity("south_korea", "country", _n("South Korea", "كوريا الجنوبية", "দক্ষিণ কোরিয়া", "Etelä-Korea", "大韓民国", "대한민국", "Южная Корея", "దక్షిణ కొరియా"),
           _f("Etelä-Korean", "Etelä-Koreassa", "Южной Кореи", "в Южной Корее")),
    Entity("india", "country", _n("India", "الهند", "ভারত", "Intia", "インド", "인도", "Индия", "భారతదేశం"),
           _f("Intian", "Intiassa", "Индии", "в Индии")),
    Entity("egypt", "country", _n("Egypt", "مصر", "মিশর", "Egypti", "エジプト", "이집트", "Египет", "ఈజిప్టు"),
           _f("Egyptin", "Egyptissä", "Египта", "в Египте")),
    Entity("bangladesh", "country", _n("Bangladesh", "بنغلاديش", "বাংলাদেশ", "Bangladesh", "バングラデシュ", "방글라데시", "Бангладеш", "బంగ్లాదేశ్"),
           _f("Bangladeshin", "Bangladeshissa", "Бангладеш", "в Бангладеш")),
    Entity("france", "country", _n("France", "فرنسا", "ফ্রান্স", "Ranska", "フランス", "프랑스", "Франция", "ఫ్రాన్స్"),
           _f("Ranskan", "Ranskassa", "Франции", "во Франции")),
    # Rivers.
    Entity("volga", "river", _n("Volga", "فولغا", "ভোলগা নদী", "Volga", "ヴォルガ川", "볼가강", "Волга", "వోల్గా నది"),
           _f("Volgan", "Volgalla", "Волги", "на Волге"), country="russia", length_km=3530),
    Entity("nile", "river", _n("Nile", "النيل", "নীলনদ", "Niili", "ナイル川", "나일강", "Нил", "నైలు నది"),
           _f("Niilin", "Niilillä", "Нила", "на Ниле"), country="egypt", length_km=6650),
    Entity("seine", "river", _n("Seine", "نهر السين", "সেন নদী", "Seine", "セーヌ川", "센강", "Сена", "సీన్ నది"),
           _f("Seinen", "Seinellä", "Сены", "на Сене"), country="france", length_km=777),
    Entity("han", "river", _n("Han River", "نهر هان", "হান নদী", "Han-joki", "漢江", "한강", "Ханган", "హాన్ నది"),
           _f("Han-joen", "Han-joella", "Ханган", "на Ханган"), country="south_korea", length_km=494),
    Entity("padma", "river", _n("Padma River", "نهر بادما", "পদ্মা নদী", "Padma", "パドマ川", "파드마강", "Падма", "పద్మా నది"),
           _f("Padman", "Padmalla", "Падмы", "на Падме"), country="bangladesh", length_km=120),
    Entity("godavari", "river", _n("Godavari River", "نهر غودافاري", "গোদাবরী নদী", "Godavari", "ゴーダーヴァリー川", "고다바리강", "Годавари", "గోదావరి నది"),
           _f("Godavarin", "Godavarilla", "Годавари", "на Годавари"), country="india", length_km=1465),
    # Cities.
    Entity("helsinki", "city", _n("Helsinki", "هلسنكي", "হেলসিঙ্কি", "Helsinki", "ヘルシンキ", "헬싱키", "Хельсинки", "హెల్సింకి"),
           _f("Helsingin", "Helsingissä", "Хельсинки", "в Хельсинки"), country="finland", capital=True),
    Entity("tampere", "city", _n("Tampere", "تامبيري", "টাম্পেরে", "Tampere", "タンペレ", "탐페레", "Тампере", "టాంపెరె"),
           _f("Tampereen", "Tampereella", "Тампере", "в Тампере"), country="finland"),
    Entity("tokyo", "city", _n("Tokyo", "طوكيو", "টোকিও", "Tokio", "東京", "도쿄", "Токио", "టోక్యో"),
           _f("Tokion", "Tokiossa", "Токио", "в Токио"), country="japan", capital=True),
    Entity("osaka", "city", _n("Osaka", "أوساكا", "ওসাকা", "Osaka", "大阪", "오사카", "Осака", "ఒసాకా"),
           _f("Osakan", "Osakassa", "Осаки", "в Осаке"), country="japan"),
    Entity("moscow", "city", _n("Moscow", "موسكو", "মস্কো", "Moskova", "モスクワ", "모스크바", "Москва", "మాస్కో"),
           _f("Moskovan", "Moskovassa", "Москвы", "в Москве"), country="russia", capital=True),
    Entity("saint_petersburg", "city", _n("Saint Petersburg", "سانت بطرسبرغ", "সেন্ট পিটার্সবার্গ", "Pietari", "サンクトペテルブルク", "상트페테르부르크", "Санкт-Петербург", "సెయింట్ పీటర్స్‌బర్గ్"),
           _f("Pietarin", "Pietarissa", "Санкт-Петербурга", "в Санкт-Петербурге"), country="russia"),
    Entity("seoul", "city", _n("Seoul", "سول", "সিউল", "Soul", "ソウル", "서울", "Сеул", "సియోల్"),
           _f("Soulin", "Soulissa", "Сеула", "в Сеуле"), country="south_korea", capital=True, river="han"),
    Entity("busan", "city", _n("Busan", "بوسان", "বুসান", "Busan", "釜山", "부산", "Пусан", "బుసాన్"),
           _f("Busanin", "Busanissa", "Пусана", "в Пусане"), country="south_korea"),
    Entity("hyderabad", "city", _n("Hyderabad", "حيدر أباد", "হায়দ্রাবাদ", "Hyderabad", "ハイデラバード", "하이데라바드", "Хайдарабад", "హైదరాబాదు"),
           _f("Hyderabadin", "Hyderabadissa", "Хайдарабада", "в Хайдарабаде"), country="india"),
    Entity("kolkata", "city", _n("Kolkata", "كولكاتا", "কলকাতা", "Kalkutta", "コルカタ", "콜카타", "Калькутта", "కోల్‌కాతా"),
           _f("Kalkutan", "Kalkutassa", "Калькутты", "в Калькутте"), country="india"),
    Entity("cairo", "city", _n("Cairo", "القاهرة", "কায়রো", "Kairo", "カイロ", "카이로", "Каир", "కైరో"),
           _f("Kairon", "Kairossa", "Каира", "в Каире"), country="egypt", capital=True, river="nile"),
    Entity("dhaka", "city", _n("Dhaka", "دكا", "ঢাকা", "Dhaka", "ダッカ", "다카", "Дакка", "ఢాకా"),
           _f("Dhakan", "Dhakassa", "Дакки", "в Дакке"), country="bangladesh", capital=True),
    Entity("paris", "city", _n("Paris", "باريس", "প্যারিস", "Pariisi", "パリ", "파리", "Париж", "పారిస్"),
           _f("Pariisin", "Pariisissa", "Парижа", "в Париже"), country="france", capital=True, river="seine"),
    # People.
    Entity("mika_waltari", "person", _n("Mika Waltari", "ميكا والتاري", "মিকা ওয়াল্টারি", "Mika Waltari", "ミカ・ワルタリ", "미카 왈타리", "Мика Валтари", "మికా వాల్టారి"),
           country="finland", born_in="helsinki", year=1908, profession="writer"),
    Entity("linus_torvalds", "person", _n("Linus Torvalds", "لينوس تورفالدس", "লিনাস টরভাল্ডস", "Linus Torvalds", "リーナス・トーバルズ", "리누스 토르발스", "Линус Торвальдс", "లైనస్ టోర్వాల్డ్స్"),
           country="finland", born_in="helsinki", year=1969, profession="engineer"),
    Entity("akira_kurosawa", "person", _n("Akira Kurosawa", "أكيرا كوروساوا", "আকিরা কুরোসাওয়া", "Akira Kurosawa", "黒澤明", "구로사와 아키라", "Акира Куросава", "అకిరా కురొసావా"),
           country="japan", born_in="tokyo", year=1910, profession="director"),
    Entity("fyodor_dostoevsky", "person", _n("Fyodor Dostoevsky", "فيودور دوستويفسكي", "ফিওদর দস্তয়েভস্কি", "Fjodor Dostojevski", "フョードル・ドストエフスキー", "표도르 도스토옙스키", "Фёдор Достоевский", "ఫ్యోదర్ దస్తయేవ్‌స్కీ"),
           country="russia", born_in="moscow", year=1821, profession="writer"),
    Entity("dmitri_shostakovich", "person", _n("Dmitri Shostakovich", "ديمتري شوستاكوفيتش", "দিমিত্রি শোস্তাকোভিচ", "Dmitri Šostakovitš", "ドミートリイ・ショスタコーヴィチ", "드미트리 쇼스타코비치", "Дмитрий Шостакович", "డిమిత్రి షోస్టకోవిచ్"),
           country="russia", born_in="saint_petersburg", year=1906, profession="composer"),
    Entity("naguib_mahfouz", "person", _n("Naguib Mahfouz", "نجيب محفوظ", "নাগিব মাহফুজ", "Naguib Mahfouz", "ナギーブ・マフフーズ", "나기브 마푸즈", "Нагиб Махфуз", "నగీబ్ మహఫూజ్"),
           country="egypt", born_in="cairo", year=1911, profession="writer"),
    Entity("rabindranath_tagore", "person", _n("Rabindranath Tagore", "رابندرانات طاغور", "রবীন্দ্রনাথ ঠাকুর", "Rabindranath Tagore", "ラビンドラナート・タゴール", "라빈드라나트 타고르", "Рабиндранат Тагор", "రవీంద్రనాథ్ ఠాగూర్"),
           country="india", born_in="kolkata", year=1861, profession="poet"),
    Entity("park_chan_wook", "person", _n("Park Chan-wook", "بارك تشان ووك", "পার্ক চান-উক", "Park Chan-wook", "パク・チャヌク", "박찬욱", "Пак Чхан Ук", "పార్క్ చాన్-వూక్"),
           country="south_korea", born_in="seoul", year=1963, profession="director"),
    Entity("claude_monet", "person", _n("Claude Monet", "كلود مونيه", "ক্লোদ মোনে", "Claude Monet", "クロード・モネ", "클로드 모네", "Клод Моне", "క్లాడ్ మోనే"),
           country="france", born_in="paris", year=1840, profession="painter"),
)
