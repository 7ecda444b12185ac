"""GUI talk in Spanish, Portuguese, Russian and Indonesian, for :mod:`core.gui`.

The same families as the English and Chinese rules in :mod:`core.gui` (export, upload,
view, drag, panel, click), each replaced by its chat equivalent in the language it was written
in: the export control becomes that language's export command ("exportar", "экспорт",
"ekspor", the first phrase of ``export`` in ``core/locales/<code>.toml``), a view of the
editor becomes "the timeline below" (the bot shows the track summary after the reply).

Rules are ``(pattern, replacement, hint)`` like :data:`core.gui._RULES`, grouped by
family (:data:`core.gui.FAMILIES`) in :data:`RULES_BY_LANGUAGE`; upload comes before
drag, so "drag your files here" asks for the file rather than for words, and view
before panel, so "open the timeline panel" shows the timeline. :data:`TEMP_ISSUE`
holds each language's "I encountered a temporary issue". ``core.gui.missing_families``
names any family a language lacks (a test keeps the list empty).
"""

from __future__ import annotations

import re

Rule = tuple[re.Pattern[str], str, str | None]

_I = re.IGNORECASE
_Q_OPEN = r"[\[“\"'‘«„]?"
_Q_CLOSE = r"[\]”\"'’»“]?"
#: The rest of a clause: up to punctuation or the end.
_REST = r"[^,.;:!?\n]*"
#: A control's name on screen: one to three capitalised words (case-sensitive even
#: inside a case-insensitive pattern, so "click the button to save" names nothing).
_UPPER = "A-ZÁÉÍÓÚÑÀÂÊÔÃÕÇÜА-ЯЁ"
_NAME = rf"(?-i:([{_UPPER}][\w-]*(?:\s+[{_UPPER}][\w-]*){{0,2}}))"
#: The word a purpose clause starts with ("to", "so that" in the four languages).
_PURPOSE_WORD = r"(?:para|y|e|и|чтобы|untuk|dan)\b"


def _rules(
    *,
    click: str,
    control: str,
    export: str,
    upload_word: str,
    view_verb: str,
    view_place: str,
    purpose: str,
    in_place: str,
    in_below: str,
    upload: str,
    drag: str,
    say: str,
    export_command: str,
    see: str,
    send_file: str,
    tell_drag: str,
    click_bare: str,
    panel_verb: str,
    panel: str,
    tell_panel: str,
    where: str = "",
    drag_infinitive: tuple[str, str] | None = None,
) -> dict[str, list[Rule]]:
    """One language's rules by family, from its words (regex fragments or replies)."""
    # Each fragment may be an alternation at its top level: group it before use.
    click, click_bare, drag, upload, view_verb, panel_verb, panel, in_place = (
        f"(?:{f})"
        for f in (click, click_bare, drag, upload, view_verb, panel_verb, panel, in_place)
    )
    article = r"(?:(?:el|la|los|las|o|a|os|as|na|no|на|в)\s+)?"
    # "you can drag the clip" needs the reply's infinitive ("puedes decirme ...").
    infinitive: list[Rule] = (
        [(re.compile(rf"\b(?:{drag_infinitive[0]}){_REST}", _I), drag_infinitive[1], None)]
        if drag_infinitive
        else []
    )
    return {
        # export: "click the Export button", "the Export button", "click Export"
        "export": [
            (
                re.compile(
                    rf"\b{click}\s+{article}(?:{control}\s+(?:de\s+|do\s+|da\s+)?)?"
                    rf"{_Q_OPEN}{export}{_Q_CLOSE}(?:\s+{control})?(?:{where})?",
                    _I,
                ),
                say.format(export_command),
                "export",
            ),
            (
                re.compile(
                    rf"\b{control}\s+(?:de\s+|do\s+|da\s+)?{_Q_OPEN}{export}{_Q_CLOSE}(?:{where})?",
                    _I,
                ),
                say.format(export_command),
                "export",
            ),
        ],
        # upload: files dragged in, or an Upload / Import control
        # ... with its purpose after a comma ("..., чтобы загрузить их")
        "upload": [
            (
                re.compile(rf"\b{upload}{_REST}(?:,\s*(?:чтобы|para|untuk)\b{_REST})?", _I),
                send_file,
                None,
            ),
            (
                re.compile(
                    rf"\b{click}\s+{article}(?:{control}\s+(?:de\s+|do\s+|da\s+)?)?"
                    rf"{_Q_OPEN}{upload_word}{_Q_CLOSE}{_REST}",
                    _I,
                ),
                send_file,
                None,
            ),
        ],
        # view: the project shown in the editor becomes the track summary below
        "view": [
            (
                re.compile(rf"\b{view_verb}\s+{view_place}(?:{purpose})?", _I),
                see,
                "timeline",
            ),
            # "... in the timeline to see the change" (the verb before it is the user's)
            (re.compile(rf"\b{in_place}{purpose}", _I), in_below, "timeline"),
        ],
        # drag: anything else moved on screen
        "drag": [*infinitive, (re.compile(rf"\b{drag}{_REST}", _I), tell_drag, None)],
        # panel: any other panel, tab or menu, named ("open the Music panel")
        "panel": [
            (
                re.compile(
                    rf"\b{panel_verb}\s+{article}{panel}\s+(?:(?:de|del|do|da|dos|das)\s+)?"
                    rf"{article}{_Q_OPEN}(\w[\w -]{{0,29}}?){_Q_CLOSE}"
                    rf"(?=\s*[,.;:!?\n]|\s+{_PURPOSE_WORD}|\s*$)"
                    rf"(?:,?\s+{_PURPOSE_WORD}{_REST})?",
                    _I,
                ),
                tell_panel,
                None,
            ),
        ],
        # click: any other control named in quotes
        "click": [
            (
                re.compile(
                    rf"\b{click}\s+{article}(?:{control}\s+)?[\[“\"«„]([^\]”\"»“]{{1,30}})[\]”\"»“]"
                    rf"(?:\s+{control})?",
                    _I,
                ),
                say.format(r"\1"),
                None,
            ),
            # ... or by its capitalised name after the control word ("the Apply button")
            (
                re.compile(rf"\b{click}\s+{article}{control}\s+(?:(?:de|do|da)\s+)?{_NAME}", _I),
                say.format(r"\1"),
                None,
            ),
            # ... or after a plain click verb ("click Apply")
            (re.compile(rf"\b{click_bare}\s+{_NAME}", _I), say.format(r"\1"), None),
        ],
    }


_ES = _rules(
    click=(
        r"(?:haz|haga|hacer|da|dale)\s+(?:clic|click|doble\s+clic)\s+(?:en|sobre|a)|"
        r"(?:pulsa|pulse|pulsar|presiona|presione|toca|toque|selecciona|seleccione|usa|use)"
        r"(?:\s+(?:en|sobre))?"
    ),
    control=r"(?:botón|icono|ícono|opción|enlace|pestaña|menú)",
    export=r"(?:exportar|descargar|renderizar|exportación|descarga)(?:\s+(?:el\s+)?video)?",
    upload_word=r"(?:subir|cargar|importar|añadir\s+medios)",
    view_verb=(
        r"(?:abre|abra|abrir|mira|mire|revisa|revise|consulta|consulte|ve\s+a|vaya\s+a|"
        r"previsualiza|previsualice|previsualízalo|previsualízala|revísalo|míralo|"
        r"echa\s+un\s+vistazo\s+a|escúchalo|escucha|reproduce)"
        r"(?:\s+(?:el\s+resultado|los\s+cambios|el\s+cambio))?"
    ),
    view_place=(
        r"(?:(?:en|a)\s+)?(?:(?:el|la|al)\s+)?(?:panel\s+(?:de\s+)?(?:la\s+)?)?"
        r"(?:línea\s+de\s+tiempo|vista\s+previa|reproductor|editor|timeline)"
        r"(?:\s+(?:panel|ventana|pestaña))?"
    ),
    purpose=rf"\s+(?:para|y)\s+(?:ver|escuchar|comprobar|revisar|oír|confirmar){_REST}",
    in_place=r"en\s+(?:el\s+|la\s+)?(?:línea\s+de\s+tiempo|vista\s+previa|reproductor|editor|timeline)",
    in_below="en la línea de tiempo de abajo",
    upload=(
        r"(?:arrastra|arrastre|importa|importe)(?:\s+y\s+suelta)?\s+(?:aquí\s+\w+|"
        r"(?:tus|sus|más|otros|otras)\s+(?:propios?\s+)?\w+|"
        r"(?:(?:los|las|un|unos|el)\s+)?(?:archivos?|medios)\b)"
    ),
    drag=r"(?:arrastra|arrastre)(?:\s+y\s+suelta)?\s+(?=el|la|los|las|este|esta|lo)",
    say="di “{}”",
    export_command="exportar",
    see="mira la línea de tiempo de abajo",
    send_file="envía el archivo aquí en el chat",
    tell_drag="dime en un mensaje qué mover y adónde",
    click_bare=r"(?:haz|haga)\s+(?:clic|click)\s+en|pulsa|pulse|presiona|presione|toca|toque",
    panel_verb=r"abre|abra|abrir|ve\s+a|vaya\s+a|cambia\s+a|usa|use",
    panel=r"panel|pestaña|menú|barra\s+lateral|sección|ventana",
    tell_panel="dime qué quieres en “\\1”",
    where=(
        r"\s+(?:en|de)\s+la\s+(?:esquina|parte|barra)"
        r"(?:\s+(?:superior|inferior|de\s+herramientas|derecha|izquierda))*"
    ),
    drag_infinitive=(
        r"arrastrar(?:\s+y\s+soltar)?\s+(?=el|la|los|las|este|esta|lo)",
        "decirme en un mensaje qué mover y adónde",
    ),
)

_PT = _rules(
    click=(
        r"(?:clique|clica|clicar|toque|toca|aperte|aperta)\s+(?:duas\s+vezes\s+)?(?:em|no|na|sobre)|"
        r"(?:pressione|pressiona|selecione|seleciona|use|usa)"
    ),
    control=r"(?:botão|ícone|opção|link|aba|menu)",
    export=r"(?:exportar|baixar|renderizar|download|exportação)(?:\s+(?:o\s+)?vídeo)?",
    upload_word=r"(?:enviar|carregar|importar|upload|adicionar\s+mídia)",
    view_verb=(
        r"(?:abra|abre|abrir|veja|vê|confira|visualize|pré-visualize|revise|olhe|"
        r"dê\s+uma\s+olhada|vá\s+para|ouça|escute|reproduza)"
        r"(?:\s+(?:o\s+resultado|as\s+alterações|a\s+alteração|as\s+mudanças|a\s+mudança))?"
    ),
    view_place=(
        r"(?:(?:em|para|a)\s+)?(?:(?:o|a|no|na|ao|à)\s+)?(?:painel\s+(?:d[aoe]\s+)?)?"
        r"(?:linha\s+do\s+tempo|pré-visualização|visualização|prévia|player|editor|timeline)"
        r"(?:\s+(?:painel|janela|aba))?"
    ),
    purpose=rf"\s+(?:para|e)\s+(?:ver|ouvir|conferir|revisar|checar|confirmar){_REST}",
    in_place=r"(?:na|no|em)\s+(?:linha\s+do\s+tempo|pré-visualização|visualização|prévia|player|editor|timeline)",
    in_below="na linha do tempo abaixo",
    upload=(
        r"(?:arraste|arrasta|importe|importa)(?:\s+e\s+solte)?\s+(?:aqui\s+\w+|"
        r"(?:seus|suas|mais|outros|outras)\s+(?:próprios?\s+)?\w+|"
        r"(?:(?:os|um|uns|o)\s+)?(?:arquivos?|mídias?)\b)"
    ),
    drag=r"(?:arraste|arrasta)(?:\s+e\s+solte)?\s+(?=o|a|os|as|este|esta|esse|essa)",
    say="diga “{}”",
    export_command="exportar",
    see="veja a linha do tempo abaixo",
    send_file="envie o arquivo aqui no chat",
    tell_drag="me diga em uma mensagem o que mover e para onde",
    click_bare=r"(?:clique|clica|toque|toca)\s+(?:em|no|na)|aperte|aperta|pressione",
    panel_verb=r"abra|abre|abrir|vá\s+para|va\s+para|acesse|use|usa",
    panel=r"painel|aba|menu|barra\s+lateral|seção|janela",
    tell_panel="me diga o que você quer em “\\1”",
    where=(
        r"\s+(?:no|na)\s+(?:canto|parte|barra)"
        r"(?:\s+(?:superior|inferior|de\s+ferramentas|direito|esquerdo|direita|esquerda))*"
    ),
    drag_infinitive=(
        r"arrastar(?:\s+e\s+soltar)?\s+(?=o|a|os|as|este|esta|esse|essa)",
        "me dizer em uma mensagem o que mover e para onde",
    ),
)

_RU = _rules(
    click=(
        r"(?:нажмите|нажми|нажать|кликните|кликни|щ[её]лкните|щ[её]лкни|выберите|выбери|"
        r"используйте|коснитесь)(?:\s+(?:на|по))?"
    ),
    control=r"(?:кнопк[уаеи]|значок|иконк[уае]|пункт|ссылк[уае]|вкладк[уае]|меню)",
    export=r"(?:экспорт\w*|скачать|рендер\w*)(?:\s+видео)?",
    upload_word=r"(?:загрузить|импорт\w*|добавить\s+медиа)",
    view_verb=(
        r"(?:откройте|открой|посмотрите|посмотри|проверьте|проверь|просмотрите|"
        r"перейдите|перейди|взгляните|прослушайте|послушайте|включите)"
        r"(?:\s+(?:результат|изменени[ея]))?"
    ),
    view_place=(
        r"(?:(?:в|на|во|к)\s+)?(?:(?:панел\w+|окн\w+|вкладк\w+)\s+)?"
        r"(?:таймлайн\w*|временн\w+\s+шкал\w*|шкал\w+\s+времени|предпросмотр\w*|"
        r"предварительн\w+\s+просмотр\w*|плеер\w*|редактор\w*)"
    ),
    purpose=rf",?\s+(?:чтобы|и)\s+(?:увидеть|услышать|проверить|посмотреть|оценить|послушать){_REST}",
    in_place=r"(?:в|на|во)\s+(?:таймлайн\w*|временн\w+\s+шкал\w*|шкал\w+\s+времени|предпросмотр\w*|плеер\w*|редактор\w*)",
    in_below="в таймлайне ниже",
    upload=(
        r"(?:перетащите|перетащи|перетяните|импортируйте)\s+"
        r"(?:сюда\s+\w+|(?:свои|ваши|нужные)\s+\w+|(?:файл|медиа)\w*)"
    ),
    drag=r"(?:перетащите|перетащи|перетяните|перетаскивайте|перетягивайте)",
    say="напишите «{}»",
    export_command="экспорт",
    see="посмотрите таймлайн ниже",
    send_file="пришлите файл сюда в чат",
    tell_drag="напишите мне в сообщении, что и куда переместить",
    click_bare=r"(?:нажмите|нажми|кликните|кликни|щ[её]лкните)(?:\s+на)?",
    panel_verb=r"откройте|открой|перейдите\s+(?:в|на)|перейди\s+(?:в|на)|используйте",
    panel=r"панел\w*|вкладк\w*|меню|раздел\w*|окн\w*",
    tell_panel="напишите, что вы хотите в разделе «\\1»",
    where=r"\s+(?:в|на)\s+(?:(?:правом|левом|верхнем|нижнем)\s+)+(?:углу|панели)(?:\s+экрана)?",
    drag_infinitive=(
        r"(?:перетащить|перетянуть)",
        "написать мне в сообщении, что и куда переместить",
    ),
)

_ID = _rules(
    click=r"(?:klik|tekan|ketuk|pilih|gunakan|pakai)(?:\s+(?:pada|di))?",
    control=r"(?:tombol|ikon|opsi|tautan|tab|menu)",
    export=r"(?:ekspor|unduh|download|render)(?:\s+video)?",
    upload_word=r"(?:unggah|upload|impor|tambah\s+media)",
    view_verb=(
        r"(?:buka|lihat|lihatlah|cek|periksa|pratinjau|tinjau|putar|dengarkan|"
        r"pergi\s+ke|beralih\s+ke)(?:\s+(?:hasilnya|perubahannya|hasil|perubahan))?"
    ),
    view_place=(
        r"(?:(?:di|ke|pada)\s+)?(?:panel\s+)?"
        r"(?:linimasa|garis\s+waktu|timeline|pratinjau|pemutar|editor)"
        r"(?:\s+(?:panel|jendela|tab))?"
    ),
    purpose=(
        rf"\s+(?:untuk|dan)\s+(?:melihat|mendengar(?:kan)?|memeriksa|mengecek|memastikan){_REST}"
    ),
    in_place=r"(?:di|pada)\s+(?:linimasa|garis\s+waktu|timeline|pratinjau|pemutar|editor)",
    in_below="di linimasa di bawah",
    upload=(
        r"(?:seret|tarik|impor)(?:\s+dan\s+lepas(?:kan)?)?\s+(?:(?:file|berkas|media)\b|"
        r"(?:foto|gambar|video|klip|audio|musik)(?:mu\b|\s+(?:kamu|anda)\b)|"
        r"[^,.;:!?\n]*\bke\s+sini\b)"
    ),
    drag=r"(?:seret|seretlah)(?:\s+dan\s+lepas(?:kan)?)?",
    say="ketik “{}”",
    export_command="ekspor",
    see="lihat linimasa di bawah",
    send_file="kirim filenya ke sini di chat",
    tell_drag="beri tahu aku lewat pesan apa yang dipindah dan ke mana",
    click_bare=r"(?:klik|tekan|ketuk)(?:\s+(?:pada|di))?",
    panel_verb=r"buka|bukalah|pergi\s+ke|beralih\s+ke|gunakan",
    panel=r"panel|tab|menu|bilah\s+samping|bagian|jendela",
    tell_panel="beri tahu aku apa yang kamu mau untuk “\\1”",
    where=r"\s+di\s+(?:pojok|sudut|bagian|bilah)(?:\s+(?:kanan|kiri|atas|bawah|alat))*",
)

#: The replies' words, to drop a second identical phrase in one sentence.
SEE_BELOW = (
    "mira la línea de tiempo de abajo",
    "veja a linha do tempo abaixo",
    "посмотрите таймлайн ниже",
    "lihat linimasa di bawah",
)

#: Each language's rules by family, in the order they apply.
RULES_BY_LANGUAGE: dict[str, dict[str, list[Rule]]] = {
    "es": _ES,
    "pt": _PT,
    "ru": _RU,
    "id": _ID,
}

#: "I encountered a temporary issue", as the backend tacks it onto replies that worked
#: (up to the end of its sentence); :class:`core.gui.SentenceBuffer` drops it at the end.
TEMP_ISSUE: dict[str, str] = {
    "es": r"(?:He\s+tenido|Tuve|Encontré|Me\s+encontré\s+con)\s+un\s+problema\s+temporal"
    r"[^.!?\n]*[.!?]?",
    "pt": r"(?:Encontrei|Tive|Ocorreu)\s+um\s+problema\s+temporário[^.!?\n]*[.!?]?",
    "ru": r"(?:Я\s+столкнул(?:ся|ась)\s+с\s+временной\s+проблемой|Возникла\s+временная\s+"
    r"проблема|Произошла\s+временная\s+ошибка)[^.!?\n]*[.!?]?",
    "id": r"(?:Saya|Aku)\s+(?:mengalami|menemui)\s+(?:sebuah\s+)?(?:masalah|kendala)\s+"
    r"sementara[^.!?\n]*[.!?]?",
}
