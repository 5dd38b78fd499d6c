"""What a file says about its own origin: C2PA manifests, IPTC digital source types, generator metadata.

Readers collect findings (``read_c2pa``, ``read_metadata``); one pure function, ``assess``, turns them into
the ``Provenance`` section and an ``AIGenerated`` verdict. Nothing here uses the network: C2PA remote
manifests, OCSP and every other fetch are turned off in the reader's settings (``C2PA_SETTINGS``), and
the c2pa library (a 23 MB native module) is imported only for files whose bytes could hold C2PA data.

Verdict rules; the confidence is that the image is AI-made:

=================================================================================  =======  ==========
evidence                                                                           verdict  confidence
=================================================================================  =======  ==========
C2PA manifest that validates, ``trainedAlgorithmicMedia`` or
``compositeWithTrainedAlgorithmicMedia`` in its actions                            ai       0.99
the same in an ingredient's manifest, or in a manifest that fails validation       ai       0.95
the same in XMP (IPTC ``Iptc4xmpExt:DigitalSourceType``: unsigned, easy to forge)  ai       0.9
a known generator named in a software field (EXIF/PNG ``Software``, PNG
``Source``, XMP ``CreatorTool``, C2PA claim generator or software agent)           ai       0.9
generator text chunks (A1111 ``parameters``, ComfyUI ``prompt``/``workflow``,
InvokeAI ``Dream``/``sd-metadata``/``invokeai_metadata``), A1111 EXIF UserComment  ai       0.85
a known generator mentioned in EXIF ``ImageDescription`` (free text)               ai       0.7
a validating C2PA manifest whose own actions declare only captures
(``digitalCapture``, ``computationalCapture``, film or print scans)                human    0.2
anything else, including no metadata at all                                        unknown  None
=================================================================================  =======  ==========

``algorithmicMedia`` is not counted as AI: IPTC defines it as media made purely by an algorithm *not*
based on sampled training data (fractals, procedural textures, test gradients such as the C2PA test
image ``C.jpg``). It is neither a capture nor generative AI, so the verdict stays ``unknown`` and the
evidence says why; a vendor detector can still decide. Absent metadata never means ``human``: most
files lose their metadata on the way, AI-made ones included.
"""

from __future__ import annotations

import functools
import io
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from image_analysis.models import AIGenerated, Provenance

if TYPE_CHECKING:
    from PIL import Image

    from image_analysis.imaging import DecodedImage

# Passed to c2pa.Context: never fetch a remote manifest, an OCSP answer or anything else. An empty list
# of allowed hosts forbids every request the library might still want to make.
C2PA_SETTINGS: dict[str, Any] = {
    "version": 1,
    "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    "core": {"allowed_network_hosts": []},
}
# Byte patterns without which a file cannot carry C2PA data: the JUMBF box type, the manifest store
# label, and the XMP property that points at a remote manifest.
_C2PA_MARKERS = (b"jumb", b"c2pa", b"dcterms:provenance")
_VALID_STATES = frozenset({"Valid", "Trusted"})

AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})
CAPTURE_SOURCE_TYPES = frozenset({"digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print"})
ALGORITHMIC_SOURCE_TYPE = "algorithmicMedia"

CONFIDENCE_C2PA = 0.99
CONFIDENCE_C2PA_WEAK = 0.95
CONFIDENCE_XMP = 0.9
CONFIDENCE_SOFTWARE = 0.9
CONFIDENCE_GENERATOR_FIELDS = 0.85
CONFIDENCE_FREE_TEXT = 0.7
CONFIDENCE_CAPTURE = 0.2

# Known generators: needles that name them in any text, and bare names that are also ordinary words
# ("firefly", "flux") and so count only in a software field. Matched as lower-case substrings.
KNOWN_GENERATORS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Midjourney": (("midjourney",), ()),
    "DALL-E": (("dall-e", "dall·e", "dalle"), ()),
    "Stable Diffusion": (("stable diffusion", "stable-diffusion", "stablediffusion", "sdxl"), ()),
    "Adobe Firefly": (("adobe firefly",), ("firefly",)),
    "Imagen": (("google imagen", "imagen 2", "imagen 3", "imagen 4"), ("imagen",)),
    "NovelAI": (("novelai",), ()),
    "ComfyUI": (("comfyui",), ()),
    "Automatic1111": (("automatic1111", "stable-diffusion-webui"), ("a1111",)),
    "Leonardo": (("leonardo.ai", "leonardo ai"), ("leonardo",)),
    "Ideogram": (("ideogram.ai", "ideogram ai"), ("ideogram",)),
    "Flux": (("flux.1", "flux-1", "flux 1.", "flux pro", "flux dev", "flux schnell", "black forest labs"), ("flux",)),
}

# PNG text chunks that generators write: key (lower case) -> (generator, a lower-case substring its value
# must contain, for keys whose name alone is too common to trust).
GENERATOR_CHUNKS: dict[str, tuple[str, str | None]] = {
    "parameters": ("Automatic1111", "steps:"),
    "prompt": ("ComfyUI", "class_type"),
    "workflow": ("ComfyUI", '"nodes"'),
    "dream": ("InvokeAI", None),
    "sd-metadata": ("InvokeAI", None),
    "invokeai_metadata": ("InvokeAI", None),
}

_EXIF_IMAGE_DESCRIPTION, _EXIF_SOFTWARE, _EXIF_IFD, _EXIF_USER_COMMENT = 0x010E, 0x0131, 0x8769, 0x9286
_XMP_LIMIT = 1 << 20
_TEXT_LIMIT = 200
_SOURCE_TYPE_RE = re.compile(r"cv\.iptc\.org/newscodes/digitalsourcetype/([A-Za-z]+)")
_XMP_PROVENANCE_RE = re.compile(r"""dcterms:provenance\s*(?:=\s*["']([^"']*)|>\s*([^<\s]+))""")
_XMP_CREATOR_TOOL_RE = re.compile(r"""xmp:CreatorTool\s*(?:=\s*["']([^"']*)|>\s*([^<]+))""")


@dataclass(frozen=True)
class SourceType:
    """An IPTC digital source type and where it was declared."""

    code: str
    origin: str  # "c2pa" (the active manifest) or "c2pa ingredient"
    agent: str | None = None


@dataclass(frozen=True)
class C2paFindings:
    manifest: bool = False
    remote_url: str | None = None
    valid: bool = False
    validation_state: str | None = None
    claim_generator: str | None = None
    source_types: tuple[SourceType, ...] = ()
    agents: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True)
class MetadataFindings:
    """Unsigned metadata: XMP, EXIF and PNG text chunks."""

    source_types: tuple[str, ...] = ()
    remote_manifest_url: str | None = None
    creator_tool: str | None = None
    software: str | None = None
    description: str | None = None
    # Software-like fields other than Software itself: PNG "Source", for one.
    tool_fields: dict[str, str] = field(default_factory=dict)
    # (field name, generator) for generator metadata found.
    generator_fields: tuple[tuple[str, str], ...] = ()
    note: str | None = None


# --- C2PA ---------------------------------------------------------------------------------------------


def could_carry_c2pa(data: bytes) -> bool:
    """A cheap test that keeps the native c2pa library out of most invocations."""
    return any(marker in data for marker in _C2PA_MARKERS)


@functools.cache
def _c2pa_context() -> Any:
    import c2pa

    return c2pa.Context.from_dict(C2PA_SETTINGS)


def read_c2pa(data: bytes, mime: str) -> C2paFindings:
    """The manifest store embedded in ``data``, read with every network fetch off; never raises."""
    try:
        import c2pa

        context = _c2pa_context()
        with c2pa.Reader(mime, io.BytesIO(data), context=context) as reader:
            store = json.loads(reader.json())
    except ImportError as exc:
        return C2paFindings(note=f"c2pa library unavailable: {exc}")
    except Exception as exc:  # untrusted bytes: the native layer raises many kinds of error
        return _c2pa_failure(str(exc))
    return c2pa_findings(store)


def _c2pa_failure(message: str) -> C2paFindings:
    lowered = message.lower()
    if "remote manifest" in lowered:
        url = re.search(r"https?://\S+", message)
        return C2paFindings(remote_url=url.group(0) if url else "")
    if "manifestnotfound" in lowered.replace(" ", "") or "no jumbf data" in lowered:
        return C2paFindings()
    return C2paFindings(note=f"c2pa data present but unreadable: {_clip(message, 120)}")


def c2pa_findings(store: dict[str, Any]) -> C2paFindings:
    """Findings from the manifest store JSON of ``c2pa.Reader.json()``."""
    manifests = store.get("manifests") or {}
    active_label = store.get("active_manifest")
    active = manifests.get(active_label)
    if not isinstance(active, dict):
        return C2paFindings(note="c2pa manifest store without an active manifest")
    state = store.get("validation_state")
    if state is None:
        # Older readers: a list of failures only; an untrusted (test or private) signer still validates.
        failures = [s for s in store.get("validation_status") or [] if isinstance(s, dict)]
        state = "Invalid" if any(s.get("code") != "signingCredential.untrusted" for s in failures) else "Valid"
    source_types: list[SourceType] = []
    agents: list[str] = []
    for label, manifest in manifests.items():
        if not isinstance(manifest, dict):
            continue
        origin = "c2pa" if label == active_label else "c2pa ingredient"
        for action in _actions(manifest):
            agent = _agent_name(action.get("softwareAgent"))
            if agent and origin == "c2pa":
                agents.append(agent)
            code = action.get("digitalSourceType")
            if isinstance(code, str) and code:
                source_types.append(SourceType(code=code.rstrip("/").rsplit("/", 1)[-1], origin=origin, agent=agent))
    return C2paFindings(
        manifest=True,
        valid=state in _VALID_STATES,
        validation_state=state,
        claim_generator=_claim_generator(active),
        source_types=tuple(dict.fromkeys(source_types)),
        agents=tuple(dict.fromkeys(agents)),
    )


def _actions(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data")
        actions = data.get("actions") if isinstance(data, dict) else None
        found.extend(a for a in actions or [] if isinstance(a, dict))
    return found


def _agent_name(agent: Any) -> str | None:
    if isinstance(agent, dict):
        agent = agent.get("name")
    return _clip(agent) if isinstance(agent, str) and agent.strip() else None


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    generator = manifest.get("claim_generator")
    if isinstance(generator, str) and generator.strip():
        return _clip(generator)
    infos = manifest.get("claim_generator_info") or []
    parts = [
        " ".join(str(info[key]) for key in ("name", "version") if info.get(key))
        for info in infos
        if isinstance(info, dict) and info.get("name")
    ]
    return _clip(" ".join(parts)) if parts else None


# --- XMP, EXIF, PNG text ------------------------------------------------------------------------------


def xmp_packet(image: Image.Image, data: bytes) -> str | None:
    """The XMP packet as text: Pillow's, else the first ``x:xmpmeta`` element found in the bytes."""
    raw = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if raw is None:
        start = data.find(b"<x:xmpmeta")
        if start < 0:
            return None
        end = data.find(b"</x:xmpmeta>", start, start + _XMP_LIMIT)
        raw = data[start : end if end > 0 else start + _XMP_LIMIT]
    if isinstance(raw, bytes):
        raw = raw[:_XMP_LIMIT].decode("utf-8", errors="replace")
    return str(raw)[:_XMP_LIMIT]


def xmp_findings(packet: str) -> tuple[tuple[str, ...], str | None, str | None]:
    """(IPTC digital source types, remote manifest URL, CreatorTool) by plain regular expressions.

    No XML parser: the packet is untrusted, and three properties do not justify entity handling.
    """
    types = tuple(dict.fromkeys(_SOURCE_TYPE_RE.findall(packet)))
    remote = _XMP_PROVENANCE_RE.search(packet)
    tool = _XMP_CREATOR_TOOL_RE.search(packet)
    return (
        types,
        (remote.group(1) or remote.group(2)) if remote else None,
        _clip((tool.group(1) or tool.group(2)).strip()) if tool else None,
    )


def read_metadata(image: Image.Image, data: bytes) -> MetadataFindings:
    """XMP, EXIF and PNG text of an opened (not decoded) image; ``data`` is the file's bytes."""
    packet = xmp_packet(image, data)
    source_types, remote_url, creator_tool = xmp_findings(packet) if packet else ((), None, None)
    software = description = None
    tool_fields: dict[str, str] = {}
    generator_fields: list[tuple[str, str]] = []

    # PNG text chunks before the image data land in ``info``; reading later ones would decode the image.
    for key, value in image.info.items():
        if not isinstance(key, str) or not isinstance(value, str):
            continue
        known = GENERATOR_CHUNKS.get(key.lower())
        if known and (known[1] is None or known[1] in value[:100_000].lower()):
            generator_fields.append((key, known[0]))
        elif key.lower() == "software":
            software = _clip(value)
        elif key.lower() == "source":
            tool_fields["png Source"] = _clip(value)

    # A PNG's EXIF may sit after the image data, and Pillow decodes the whole image to find it.
    if image.format != "PNG" or "exif" in image.info:
        exif = image.getexif()
        software = software or _text(exif.get(_EXIF_SOFTWARE))
        description = _text(exif.get(_EXIF_IMAGE_DESCRIPTION))
        comment = _user_comment(exif.get_ifd(_EXIF_IFD).get(_EXIF_USER_COMMENT))
        if comment and "steps:" in comment.lower() and "sampler" in comment.lower():
            generator_fields.append(("UserComment", "Automatic1111"))

    return MetadataFindings(
        source_types=source_types,
        remote_manifest_url=remote_url,
        creator_tool=creator_tool,
        software=software,
        description=description,
        tool_fields=tool_fields,
        generator_fields=tuple(dict.fromkeys(generator_fields)),
    )


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        value = value.strip("\x00 \t\r\n")
        return _clip(value) if value else None
    return None


def _user_comment(value: Any) -> str | None:
    """EXIF UserComment: an 8-byte charset prefix, then text (A1111 writes UTF-16 under "UNICODE")."""
    if isinstance(value, str):
        return value
    if not isinstance(value, bytes) or len(value) <= 8:
        return None
    head, body = value[:8], value[8:]
    if head.startswith(b"UNICODE"):
        big, little = body.decode("utf-16-be", errors="replace"), body.decode("utf-16-le", errors="replace")
        return big if big.isascii() or not little.isascii() else little
    return body.decode("utf-8", errors="replace")


def _clip(text: str, limit: int = _TEXT_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def find_generators(text: str | None, software_field: bool) -> list[str]:
    """Known generators named in ``text``; bare ordinary words count only in a software field."""
    if not text:
        return []
    lowered = text.lower()
    return [
        name
        for name, (needles, bare) in KNOWN_GENERATORS.items()
        if any(n in lowered for n in needles) or (software_field and any(b in lowered for b in bare))
    ]


# --- verdict ------------------------------------------------------------------------------------------


def assess(c2pa: C2paFindings, meta: MetadataFindings, provider: str = "builtin") -> tuple[Provenance, AIGenerated]:
    """The Provenance section and the AI verdict from the findings; see the module docstring for the rules."""
    facts: list[str] = []  # everything found, for Provenance.evidence
    ai: list[tuple[float, str, list[str]]] = []  # (confidence, evidence, generators)
    notes: list[str] = []  # why an unknown verdict is unknown
    human: list[str] = []

    # XMP dcterms:provenance may also point inside the file ("self#jumbf=..."); only a URL is remote.
    xmp_remote = meta.remote_manifest_url if (meta.remote_manifest_url or "").startswith(("http:", "https:")) else None
    remote_url = c2pa.remote_url if c2pa.remote_url is not None else xmp_remote
    remote = not c2pa.manifest and remote_url is not None
    if c2pa.manifest:
        state = "" if c2pa.valid else f", validation {c2pa.validation_state or 'failed'}"
        facts.append(f"c2pa manifest (claim generator {c2pa.claim_generator or 'unnamed'}{state})")
        active = [st for st in c2pa.source_types if st.origin == "c2pa"]
        if not active:
            notes.append("c2pa manifest declares no digitalSourceType")
    if remote:
        host = urlsplit(remote_url).hostname if remote_url else None
        notes.append(f"c2pa manifest is remote{f' ({host})' if host else ''}; not fetched")
    if c2pa.note:
        notes.append(c2pa.note)
    if meta.note:
        notes.append(meta.note)

    for st in c2pa.source_types:
        by = f"software agent {st.agent}" if st.agent else f"claim generator {c2pa.claim_generator or 'unnamed'}"
        where = "c2pa manifest" if st.origin == "c2pa" else "c2pa ingredient manifest"
        line = f"{where}: digitalSourceType {st.code} ({by})"
        if st.code in AI_SOURCE_TYPES:
            strong = c2pa.valid and st.origin == "c2pa"
            if not c2pa.valid:
                line += "; manifest failed validation"
            names = find_generators(st.agent, software_field=True) or ([st.agent] if st.agent else [])
            ai.append((CONFIDENCE_C2PA if strong else CONFIDENCE_C2PA_WEAK, line, names))
        elif st.code in CAPTURE_SOURCE_TYPES and st.origin == "c2pa" and c2pa.valid:
            human.append(line)
        else:
            line = _not_ai(line, st.code)
            notes.append(line)
        facts.append(line)
    if any(st.origin == "c2pa" and st.code not in CAPTURE_SOURCE_TYPES for st in c2pa.source_types):
        human.clear()  # a capture mixed with anything else is not a plain capture

    for code in meta.source_types:
        line = f"xmp: IPTC digitalSourceType {code}"
        if code in AI_SOURCE_TYPES:
            ai.append((CONFIDENCE_XMP, line, []))
        elif code in CAPTURE_SOURCE_TYPES:
            line += ": unsigned, not enough to call it human"
            notes.append(line)
        else:
            line = _not_ai(line, code)
            notes.append(line)
        facts.append(line)

    for field_name, generator in meta.generator_fields:
        where = "exif" if field_name == "UserComment" else "png text chunk"
        line = f"{where} '{field_name}' holds {generator} generation metadata"
        facts.append(line)
        ai.append((CONFIDENCE_GENERATOR_FIELDS, line, [generator]))

    tools: list[tuple[str, str | None]] = [
        ("software", meta.software),
        ("xmp CreatorTool", meta.creator_tool),
        *meta.tool_fields.items(),
        ("c2pa claim generator", c2pa.claim_generator),
        *(("c2pa software agent", agent) for agent in c2pa.agents),
    ]
    for label, value in tools:
        for generator in find_generators(value, software_field=True):
            line = f"{label} names {generator}: {value}"
            facts.append(line)
            ai.append((CONFIDENCE_SOFTWARE, line, [generator]))
    for generator in find_generators(meta.description, software_field=False):
        line = f"exif ImageDescription mentions {generator}"
        facts.append(line)
        ai.append((CONFIDENCE_FREE_TEXT, line, [generator]))

    provenance = Provenance(
        c2pa_manifest=c2pa.manifest,
        c2pa_remote_manifest=remote,
        claim_generator=c2pa.claim_generator,
        digital_source_type=_main_source_type(c2pa, meta),
        software=meta.software or meta.creator_tool,
        generator_metadata=list(dict.fromkeys(name for name, _ in meta.generator_fields)),
        evidence=list(dict.fromkeys(facts + notes)),
        provider=provider,
        c2pa_proves_ai=proves_ai(c2pa),
    )
    return provenance, _verdict(ai, human, notes, provider)


def proves_ai(c2pa: C2paFindings) -> bool:
    """The first row of the table only: the active manifest validated and itself declares a generative
    source type. An ingredient's claim, a manifest that fails validation and unsigned XMP can be copied
    or forged, so they never stand in for a paid detector (``AI_SKIP_WHEN_PROVEN``, routing)."""
    active = (st for st in c2pa.source_types if st.origin == "c2pa")
    return c2pa.manifest and c2pa.valid and any(st.code in AI_SOURCE_TYPES for st in active)


def _not_ai(line: str, code: str) -> str:
    if code == ALGORITHMIC_SOURCE_TYPE:
        return f"{line}: made by an algorithm without training data, not counted as AI"
    return f"{line}: not an AI claim"


def _verdict(ai: list[tuple[float, str, list[str]]], human: list[str], notes: list[str], provider: str) -> AIGenerated:
    if ai:
        generators: dict[str, float] = {}
        for confidence, _, names in ai:
            for name in names:
                generators[name] = max(generators.get(name, 0.0), confidence)
        return AIGenerated(
            verdict="ai",
            confidence=max(confidence for confidence, _, _ in ai),
            generators=generators,
            evidence=list(dict.fromkeys(line for _, line, _ in ai)),
            provider=provider,
        )
    if human:
        return AIGenerated(verdict="human", confidence=CONFIDENCE_CAPTURE, evidence=human, provider=provider)
    return AIGenerated(
        verdict="unknown",
        confidence=None,
        evidence=list(dict.fromkeys(notes)) or ["no C2PA, IPTC or generator metadata found"],
        provider=provider,
    )


def _main_source_type(c2pa: C2paFindings, meta: MetadataFindings) -> str | None:
    """The AI type if any was declared, else the active manifest's, else the XMP one."""
    ordered = [st.code for st in c2pa.source_types if st.origin == "c2pa"]
    ordered += list(meta.source_types) + [st.code for st in c2pa.source_types if st.origin != "c2pa"]
    return next((code for code in ordered if code in AI_SOURCE_TYPES), ordered[0] if ordered else None)


# --- entry point --------------------------------------------------------------------------------------


def inspect(image: DecodedImage, provider: str = "builtin") -> tuple[Provenance, AIGenerated]:
    """Provenance and AI verdict for a decoded upload, from its original bytes; never raises."""
    try:
        meta = read_metadata(image.open(), image.data)
    except Exception as exc:  # Pillow's metadata parsers raise many kinds of error on bad files
        meta = MetadataFindings(note=f"metadata unreadable: {_clip(str(exc), 120)}")
    c2pa = read_c2pa(image.data, image.content_type) if could_carry_c2pa(image.data) else C2paFindings()
    return assess(c2pa, meta, provider)
