"""validate(): every mistake the API would answer 400 or 404 for, found before sending.

Two request shapes are understood:

- the SDK call, `{"model": ..., "contents": ..., "config": ...}`, where `config` is a
  `GenerateContentConfig` or a dict in camelCase or snake_case (what the Guard sees);
- the REST body, `{"contents": ..., "generationConfig": ..., "safetySettings": ...}`,
  optionally with `"model"` (what the gateway and batch files see).

The rules are pure: no I/O, except asking a `ModelCatalog` for its (cached) list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from google.genai import types as genai_types

from gemini_guard.diagnosis import Category
from gemini_guard.secrets import redact
from gemini_guard.tiers import load_models, model_spec
from gemini_guard.tokens import MAX_TOKENS_PER_CHAR, estimate_text_tokens, estimate_tokens
from gemini_guard.validation._catalog import ModelCatalog, ModelInfo
from gemini_guard.validation._fields import (
    FOREIGN_NAMES,
    REST_REQUEST_FIELDS,
    Schema,
    closest,
    normalize,
    schema_of,
)
from gemini_guard.validation._problem import Problem, Severity
from gemini_guard.validation._retired import retired_model

__all__ = ["ModelSource", "check_request", "validate"]

# What `model_info` may be: a catalog, one model (a models.get answer), or a list.
ModelSource = ModelCatalog | ModelInfo | genai_types.Model | Mapping[str, Any] | Iterable[Any]

SDK_CALL_FIELDS = ("model", "contents", "config")
DEFAULT_MAX_TEMPERATURE = 2.0
VALID_ROLES = ("user", "model")
# Values that exist in the enums but are placeholders, or that the SDK documents as
# not supported by the Gemini API (only by Vertex AI).
_PLACEHOLDER_ENUMS = {"HARM_CATEGORY_UNSPECIFIED", "HARM_BLOCK_THRESHOLD_UNSPECIFIED"}
_VERTEX_ONLY_CATEGORIES = {
    "HARM_CATEGORY_IMAGE_HATE",
    "HARM_CATEGORY_IMAGE_DANGEROUS_CONTENT",
    "HARM_CATEGORY_IMAGE_HARASSMENT",
    "HARM_CATEGORY_IMAGE_SEXUALLY_EXPLICIT",
}
_ROLE_HINTS = {"assistant": "model", "bot": "model", "ai": "model", "human": "user"}


def check_request(
    model: Any,
    contents: Any,
    config: Any = None,
    *,
    catalog: ModelSource | None = None,
) -> list[Problem]:
    """The problems of one `generate_content(model=, contents=, config=)` call.

    The seam the Guard calls before sending; see `validate` for the rules.
    """
    return validate({"model": model, "contents": contents, "config": config}, model_info=catalog)


def validate(request: Mapping[str, Any], *, model_info: ModelSource | None = None) -> list[Problem]:
    """Every problem of `request` the API would reject (errors) or likely trip on (warnings).

    `model_info` says which models exist and their token limits: a `ModelCatalog`
    (a cached models.list), a list of models, or one model (a models.get answer), as
    SDK `types.Model`, REST dicts or `ModelInfo`. Without it, only retired names are
    reported as missing, and token limits come from the shipped model table.
    """
    if not isinstance(request, Mapping):
        raise TypeError(
            "validate() takes a mapping: {'model': ..., 'contents': ..., 'config': ...} "
            f"or a REST generateContent body; got {type(request).__name__}"
        )
    out = _Problems()
    rest = _is_rest_body(request)
    _check_top_level(request, rest=rest, out=out)
    # A REST body names its model in the URL; check it only when the body carries one.
    check_model = not rest or "model" in request
    info = _check_model(request.get("model"), model_info, out=out) if check_model else None
    _check_contents(request.get("contents"), rest=rest, out=out)

    if rest:
        generation = _Fields.of(
            request.get("generationConfig", request.get("generation_config")),
            path=_key_used(request, "generation_config", "generationConfig"),
            schema=schema_of(genai_types.GenerationConfig),
            out=out,
        )
        top = _Fields(request, path="", schema=REST_REQUEST_FIELDS, out=out)
        safety_owner: _Fields | None = top
        system = top.get("system_instruction")
    else:
        generation = _Fields.of(
            request.get("config"),
            path="config",
            schema=schema_of(genai_types.GenerateContentConfig),
            out=out,
        )
        safety_owner = generation
        system = generation.get("system_instruction") if generation else None

    if generation is not None:
        _check_generation(generation, info, out=out)
    if safety_owner is not None:
        _check_safety(safety_owner, rest=rest, out=out)
    _check_input_tokens(request.get("contents"), system, info, out=out)
    return out.items


# --- collecting problems -----------------------------------------------------------------


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(
        self,
        path: str,
        code: str,
        en: str,
        zh: str,
        *,
        allowed: str | None = None,
        suggestion: str | None = None,
        severity: Severity = "error",
        category: Category = Category.BAD_REQUEST,
    ) -> None:
        self.items.append(
            Problem(
                path=path or "(request)",
                code=code,
                message=en,
                message_zh=zh,
                allowed=allowed,
                suggestion=suggestion,
                severity=severity,
                category=category,
            )
        )


def _show(value: Any) -> str:
    """A short, key-free rendering of a caller's value for a message."""
    text = redact(repr(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _key_used(mapping: Mapping[str, Any], snake: str, camel: str) -> str:
    return camel if camel in mapping else snake


# --- field names -------------------------------------------------------------------------


def _is_rest_body(request: Mapping[str, Any]) -> bool:
    rest_only = {n for n in REST_REQUEST_FIELDS.by_name if n not in SDK_CALL_FIELDS}
    return any(key in rest_only for key in request)


def _check_top_level(request: Mapping[str, Any], *, rest: bool, out: _Problems) -> None:
    if rest and "config" in request:
        out.add(
            "config",
            "mixed_shapes",
            "the request mixes the SDK's `config` with REST body fields such as "
            "generationConfig; use one shape",
            "请求同时用了 SDK 的 config 和 REST 请求体字段（如 generationConfig）；只用一种写法",
        )
        return
    if rest:
        _check_keys(request, REST_REQUEST_FIELDS, path="", out=out, recurse=False)
        return
    for key in request:
        if key in SDK_CALL_FIELDS:
            continue
        hint = closest(key, SDK_CALL_FIELDS)
        out.add(
            key,
            "unknown_field",
            f"unknown argument {key!r} of generate_content",
            f"generate_content 没有参数 {key!r}",
            allowed="model, contents, config",
            suggestion=hint,
        )


def _check_keys(
    mapping: Mapping[str, Any], schema: Schema, *, path: str, out: _Problems, recurse: bool
) -> None:
    """Unknown keys of `mapping` (with did-you-mean), then its nested objects."""
    for key, value in mapping.items():
        where = _join(path, key)
        info = schema.lookup(key) if isinstance(key, str) else None
        if info is None:
            _unknown_field(str(key), schema, where, out)
            continue
        if info.unsupported_note and value is not None:
            out.add(
                where,
                "unsupported_field",
                f"{info.camel} is set, but {info.unsupported_note}",
                f"设置了 {info.camel}，但 SDK 文档说明 Gemini API 不支持此字段（仅 Vertex AI）",
                severity="warning",
            )
        if not recurse or info.nested is None or value is None:
            continue
        nested = schema_of(info.nested)
        if info.nested_is_list and isinstance(value, Sequence) and not isinstance(value, str):
            for index, item in enumerate(value):
                if isinstance(item, Mapping):
                    _check_keys(item, nested, path=_join(where, index), out=out, recurse=True)
        elif isinstance(value, Mapping):
            _check_keys(value, nested, path=where, out=out, recurse=True)


def _unknown_field(key: str, schema: Schema, where: str, out: _Problems) -> None:
    suggestion = FOREIGN_NAMES.get(normalize(key))
    if suggestion is not None and schema.lookup(suggestion) is None:
        suggestion = None  # the foreign name's Gemini twin lives elsewhere
    if suggestion is None and normalize(key) in {"generationconfig"}:
        suggestion = "its fields directly in config (config has no generation_config)"
    if suggestion is None:
        suggestion = closest(key, schema.camel_names)
    field = schema.lookup(suggestion) if suggestion is not None else None
    if field is not None and field.snake != field.camel:
        suggestion = f"{field.camel} (snake_case: {field.snake})"
    out.add(
        where,
        "unknown_field",
        f"unknown field {key!r} in {schema.type_name}",
        f"{schema.type_name} 中没有字段 {key!r}",
        suggestion=suggestion,
    )


# --- reading fields in either spelling ------------------------------------------------------


@dataclass(slots=True)
class _Fields:
    """Read a config's fields by snake_case name, whatever spelling or type holds them."""

    source: Mapping[str, Any] | pydantic.BaseModel
    path: str
    schema: Schema
    out: _Problems

    @classmethod
    def of(cls, value: Any, *, path: str, schema: Schema, out: _Problems) -> _Fields | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            _check_keys(value, schema, path=path, out=out, recurse=True)
            return cls(value, path, schema, out)
        if isinstance(value, pydantic.BaseModel):
            # The SDK's types forbid unknown fields themselves; read them as they are.
            return cls(value, path, schema, out)
        out.add(
            path,
            "wrong_type",
            f"must be a {schema.type_name} or a dict, not {type(value).__name__}",
            f"必须是 {schema.type_name} 或 dict，而不是 {type(value).__name__}",
        )
        return None

    def where(self, snake: str) -> str:
        if isinstance(self.source, Mapping):
            info = self.schema.lookup(snake)
            if info is not None and info.camel in self.source:
                return _join(self.path, info.camel)
        return _join(self.path, snake)

    def get(self, snake: str) -> Any:
        if not isinstance(self.source, Mapping):
            return getattr(self.source, snake, None)
        info = self.schema.lookup(snake)
        camel = info.camel if info is not None else snake
        if camel != snake and camel in self.source and snake in self.source:
            a, b = self.source[camel], self.source[snake]
            if a != b:
                self.out.add(
                    self.where(snake),
                    "duplicate_field",
                    f"given twice with different values: {camel}={_show(a)} and {snake}={_show(b)}",
                    f"同一字段给了两次且值不同：{camel}={_show(a)}，{snake}={_show(b)}",
                    suggestion=f"only one of {camel} / {snake}",
                )
        return self.source.get(camel, self.source.get(snake))


# --- model ---------------------------------------------------------------------------------


def _listed_models(source: ModelSource | None) -> dict[str, ModelInfo] | None:
    if source is None:
        return None
    if isinstance(source, ModelCatalog):
        models = source.models()
        return None if models is None else dict(models)
    if isinstance(source, ModelInfo | genai_types.Model) or (
        isinstance(source, Mapping) and "name" in source
    ):
        one = ModelInfo.from_api(source)
        return {one.name: one}
    if isinstance(source, Mapping):
        return {str(k).removeprefix("models/"): ModelInfo.from_api(v) for k, v in source.items()}
    infos = [ModelInfo.from_api(m) for m in source]
    return {i.name: i for i in infos}


def _with_spec_limits(info: ModelInfo) -> ModelInfo:
    """`info`, its missing token limits filled in from the shipped table."""
    spec = model_spec(info.name)
    if spec is None or (info.input_token_limit and info.output_token_limit):
        return info
    return ModelInfo(
        name=info.name,
        input_token_limit=info.input_token_limit or spec.input_token_limit,
        output_token_limit=info.output_token_limit or spec.output_token_limit,
        supported_actions=info.supported_actions,
        max_temperature=info.max_temperature,
        display_name=info.display_name,
    )


def _check_model(model: Any, source: ModelSource | None, *, out: _Problems) -> ModelInfo | None:
    """Report a missing, unknown or retired model; return what is known of it."""
    if not isinstance(model, str) or not model.strip():
        out.add(
            "model",
            "missing_model",
            "no model given" if model is None else f"the model must be a name, not {_show(model)}",
            "没有指定模型" if model is None else f"模型必须是名称字符串，而不是 {_show(model)}",
            suggestion="gemini-2.5-flash",
        )
        return None
    bare = model.strip().removeprefix("models/")
    if "/" in bare:  # tunedModels/..., publishers/...: not in models.list
        return None
    listed = _listed_models(source)
    retired = retired_model(bare)
    if listed is not None and bare in listed:
        info = _with_spec_limits(listed[bare])
        if not info.can_generate:
            out.add(
                "model",
                "not_generative",
                f"{bare} does not support generateContent "
                f"(it supports: {', '.join(info.supported_actions)})",
                f"{bare} 不支持 generateContent（它支持：{', '.join(info.supported_actions)}）",
                suggestion=closest(bare, [n for n, i in listed.items() if i.can_generate]),
                category=Category.NOT_FOUND,
            )
        return info
    if retired is not None:
        out.add(
            "model",
            "retired_model",
            f"{bare} is retired ({retired.note}); the API answers 404 for it",
            f"{bare} 已下线（{retired.note_zh}）；API 对它返回 404",
            suggestion=retired.successor,
            category=Category.NOT_FOUND,
        )
        return None
    if listed is not None:
        out.add(
            "model",
            "unknown_model",
            f"{bare} is not in the models list of this key",
            f"{bare} 不在此密钥可用的模型列表中",
            suggestion=closest(bare, [n for n, i in listed.items() if i.can_generate]),
            category=Category.NOT_FOUND,
        )
        return None
    spec = model_spec(bare)
    if spec is not None:
        return ModelInfo.from_spec(spec)
    near = closest(bare, load_models(), cutoff=0.85)
    if near is not None:
        out.add(
            "model",
            "unknown_model",
            f"{bare} is not in the shipped model table, and is close to {near}; "
            "pass a ModelCatalog to check it against the live models list",
            f"{bare} 不在内置模型表中，且与 {near} 很像；传入 ModelCatalog 可对照实时模型列表检查",
            suggestion=near,
            severity="warning",
            category=Category.NOT_FOUND,
        )
    return None


# --- contents ------------------------------------------------------------------------------


def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(exclude_none=True)
    return None


def _is_content(item: Mapping[str, Any]) -> bool:
    return "parts" in item or "role" in item


def _check_contents(contents: Any, *, rest: bool, out: _Problems) -> None:
    if contents is None or contents == "" or (isinstance(contents, Sequence) and not contents):
        out.add(
            "contents",
            "empty_contents",
            "contents is empty: the API needs at least one part with text or data",
            "contents 为空：API 至少需要一个含文本或数据的 part",
            suggestion='contents="your prompt"',
        )
        return
    items: list[Any] = (
        list(contents)
        if isinstance(contents, Sequence) and not isinstance(contents, str | bytes)
        else [contents]
    )
    single = not (isinstance(contents, Sequence) and not isinstance(contents, str | bytes))
    for index, item in enumerate(items):
        path = "contents" if single else f"contents[{index}]"
        mapping = _as_mapping(item)
        if mapping is not None and _is_content(mapping):
            if not rest and isinstance(item, Mapping):
                _check_keys(item, schema_of(genai_types.Content), path=path, out=out, recurse=True)
            _check_content(mapping, path, out)
        else:
            _check_part(item, path, out)


def _check_content(content: Mapping[str, Any], path: str, out: _Problems) -> None:
    role = content.get("role")
    if role is not None and role not in VALID_ROLES:
        hint = _ROLE_HINTS.get(str(role).lower())
        if str(role).lower() == "system":
            hint = "systemInstruction (config.system_instruction) for system prompts"
        lenient = str(role).lower() in {"function", "tool"}
        out.add(
            _join(path, "role"),
            "invalid_role",
            f"role {_show(role)} is not one the API accepts",
            f"API 不接受角色 {_show(role)}",
            allowed=", ".join(VALID_ROLES),
            suggestion=hint or ("user" if lenient else closest(str(role), VALID_ROLES)),
            severity="warning" if lenient else "error",
        )
    parts = content.get("parts")
    if not parts:
        out.add(
            _join(path, "parts"),
            "empty_parts",
            "parts must not be empty",
            "parts 不能为空",
        )
        return
    if isinstance(parts, str | bytes) or not isinstance(parts, Sequence):
        parts = [parts]
    for index, part in enumerate(parts):
        _check_part(part, _join(_join(path, "parts"), index), out)


def _check_part(part: Any, path: str, out: _Problems) -> None:
    if isinstance(part, str):
        text: Any = part
    else:
        mapping = _as_mapping(part)
        if mapping is None:
            return  # files, PIL images...: the SDK converts them; nothing to say
        if not mapping:
            out.add(path, "empty_part", "this part is empty", "这个 part 为空")
            return
        text = mapping.get("text")
        if text is None or len(mapping) > 1:
            return  # data, function calls: the SDK and API types police these
    if text == "":
        out.add(
            path,
            "empty_text",
            "empty text: the API rejects a text part with no text",
            "空文本：API 拒绝没有内容的 text part",
        )


# --- generation parameters -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Range:
    snake: str
    camel: str
    low: float
    high: float | None  # None: no upper bound
    integer: bool


def _ranges(info: ModelInfo | None) -> list[_Range]:
    max_temperature = (info.max_temperature if info else None) or DEFAULT_MAX_TEMPERATURE
    output_limit = (info.output_token_limit if info else None) or None
    return [
        _Range("temperature", "temperature", 0.0, max_temperature, integer=False),
        _Range("top_p", "topP", 0.0, 1.0, integer=False),
        _Range("top_k", "topK", 1, None, integer=True),
        _Range("candidate_count", "candidateCount", 1, 8, integer=True),
        _Range("max_output_tokens", "maxOutputTokens", 1, output_limit, integer=True),
    ]


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) >= 10 else str(x)


def _check_generation(fields: _Fields, info: ModelInfo | None, *, out: _Problems) -> None:
    for rule in _ranges(info):
        value = fields.get(rule.snake)
        if value is None:
            continue
        where = fields.where(rule.snake)
        allowed = (
            f"{_fmt(rule.low)}–{_fmt(rule.high)}"
            if rule.high is not None
            else f"≥ {_fmt(rule.low)}"
        )
        if rule.integer:
            allowed = f"a whole number {allowed}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            out.add(
                where,
                "wrong_type",
                f"{rule.camel} must be a number, not {_show(value)}",
                f"{rule.camel} 必须是数字，而不是 {_show(value)}",
                allowed=allowed,
            )
            continue
        if math.isnan(value) or (rule.integer and not float(value).is_integer()):
            out.add(
                where,
                "wrong_type",
                f"{rule.camel} must be a whole number, not {_show(value)}",
                f"{rule.camel} 必须是整数，而不是 {_show(value)}",
                allowed=allowed,
            )
            continue
        too_high = rule.high is not None and value > rule.high
        if value >= rule.low and not too_high:
            continue
        en = f"{rule.camel}={_show(value)} is out of range"
        zh = f"{rule.camel}={_show(value)} 超出范围"
        if rule.snake == "temperature":
            en += (
                " (the API reference allows 0.0–2.0; some guides say 0–1, the older models' range)"
            )
            zh += "（官方 API 参考为 0.0–2.0；部分指南写 0–1，那是旧模型的范围）"
        if rule.snake == "max_output_tokens" and too_high and info is not None:
            en = f"maxOutputTokens={_show(value)} is above {info.name}'s output limit"
            zh = f"maxOutputTokens={_show(value)} 超过了 {info.name} 的输出上限"
        out.add(where, "out_of_range", en, zh, allowed=allowed)


# --- safety settings -----------------------------------------------------------------------


def _enum_text(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _check_safety(owner: _Fields, *, rest: bool, out: _Problems) -> None:
    settings = owner.get("safety_settings")
    if settings is None:
        return
    path = owner.where("safety_settings")
    if isinstance(settings, str | bytes | Mapping) or not isinstance(settings, Sequence):
        out.add(
            path,
            "wrong_type",
            "safetySettings must be a list of {category, threshold} settings",
            "safetySettings 必须是由 {category, threshold} 组成的列表",
        )
        return
    for index, setting in enumerate(settings):
        where = _join(path, index)
        mapping = _as_mapping(setting)
        if mapping is None:
            out.add(
                where,
                "wrong_type",
                f"a safety setting must be a SafetySetting or a dict, not {_show(setting)}",
                f"安全设置必须是 SafetySetting 或 dict，而不是 {_show(setting)}",
            )
            continue
        if rest and isinstance(setting, Mapping):
            _check_keys(
                setting, schema_of(genai_types.SafetySetting), path=where, out=out, recurse=False
            )
        category = _enum_text(mapping.get("category"))
        threshold = _enum_text(mapping.get("threshold"))
        _check_enum(category, genai_types.HarmCategory, _join(where, "category"), rest, out)
        _check_enum(threshold, genai_types.HarmBlockThreshold, _join(where, "threshold"), rest, out)
        if category in _VERTEX_ONLY_CATEGORIES:
            out.add(
                _join(where, "category"),
                "unsupported_value",
                f"{category} is documented by the SDK as not supported by the Gemini API",
                f"SDK 文档说明 Gemini API 不支持 {category}",
                severity="warning",
            )
        if not isinstance(setting, Mapping) and mapping.get("method") is not None:
            note = schema_of(genai_types.SafetySetting).by_name["method"].unsupported_note
            out.add(
                _join(where, "method"),
                "unsupported_field",
                f"method is set, but {note}",
                "设置了 method，但 SDK 文档说明 Gemini API 不支持此字段（仅 Vertex AI）",
                severity="warning",
            )


def _check_enum(value: Any, enum: type[Any], path: str, rest: bool, out: _Problems) -> None:
    names = [member.value for member in enum]
    unusable = _PLACEHOLDER_ENUMS | _VERTEX_ONLY_CATEGORIES
    allowed = ", ".join(n for n in names if n not in unusable)
    field = path.rsplit(".", 1)[-1]
    if value is None:
        out.add(path, "missing_field", f"{field} is required", f"{field} 为必填项", allowed=allowed)
        return
    text = str(value)
    if text in names:
        if text in _PLACEHOLDER_ENUMS:
            out.add(
                path,
                "placeholder_value",
                f"{text} is a placeholder, not a setting",
                f"{text} 只是占位值，不是有效设置",
                allowed=allowed,
                severity="warning",
            )
        return
    upper = text.upper()
    if upper in names:
        if rest:  # the SDK upper-cases enum names for you; a raw body is sent as written
            out.add(
                path,
                "bad_enum",
                f"{text!r} must be written in capitals in a REST body",
                f"REST 请求体中 {text!r} 必须大写",
                suggestion=upper,
            )
        return
    prefixed = "HARM_CATEGORY_" + upper
    suggestion = prefixed if prefixed in names else closest(upper, names)
    out.add(
        path,
        "bad_enum",
        f"{_show(value)} is not a valid {enum.__name__}",
        f"{_show(value)} 不是有效的 {enum.__name__}",
        allowed=allowed,
        suggestion=suggestion,
    )


# --- input size ----------------------------------------------------------------------------


def _check_input_tokens(
    contents: Any, system: Any, info: ModelInfo | None, *, out: _Problems
) -> None:
    if info is None or not info.input_token_limit or contents is None:
        return
    estimate = estimate_tokens(contents) + estimate_tokens(system)
    if estimate <= info.input_token_limit:
        return
    out.add(
        "contents",
        "input_too_large",
        f"about {estimate:,} input tokens, over {info.name}'s limit of "
        f"{info.input_token_limit:,} (estimated by script, ~1 token per word or "
        "0.6 per Chinese character; "
        "countTokens gives the exact figure)",
        f"约 {estimate:,} 个输入 token，超过 {info.name} 的上限 {info.input_token_limit:,}"
        "（按文字类别估算：约每个英文单词 1 个 token、每个汉字 0.6 个；countTokens 可得准确数）",
        allowed=f"≤ {info.input_token_limit:,} tokens",
        category=Category.REQUEST_TOO_LARGE,
    )


# --- the model-and-config part of a request, for the Guard's per-shape cache ---------------


@dataclass(frozen=True, slots=True)
class ShapeVerdict:
    """What the checks of a request's model and config came to, contents aside.

    `clean`: no problem with the model or the config. Then a request of that shape
    whose contents are one non-empty string is clean too unless it is too large,
    which `fits` tells from the string's length alone.
    """

    clean: bool
    input_token_limit: int | None
    system_tokens: int

    def fits(self, text: str) -> bool:
        """True when `text` as the whole contents passes every contents check."""
        if not text:
            return False  # empty_contents
        limit = self.input_token_limit
        return limit is None or estimate_text_tokens(text) + self.system_tokens <= limit

    def longest_text(self) -> float:
        """A length up to which every non-empty text `fits` (inf without a token limit):
        no character is estimated at more than MAX_TOKENS_PER_CHAR tokens, so a text
        that short cannot be over; a longer one is estimated in full."""
        limit = self.input_token_limit
        if limit is None:
            return math.inf
        return max(0, limit - self.system_tokens) / MAX_TOKENS_PER_CHAR


def shape_verdict(model: Any, config: Any, *, catalog: ModelSource | None) -> ShapeVerdict:
    """The model and config checks of `validate` for an SDK-shape call (same rules)."""
    out = _Problems()
    info = _check_model(model, catalog, out=out)
    generation = _Fields.of(
        config, path="config", schema=schema_of(genai_types.GenerateContentConfig), out=out
    )
    system = None
    if generation is not None:
        system = generation.get("system_instruction")
        _check_generation(generation, info, out=out)
        _check_safety(generation, rest=False, out=out)
    limit = info.input_token_limit if info is not None else None
    return ShapeVerdict(
        clean=not out.items,
        input_token_limit=limit or None,
        system_tokens=estimate_tokens(system),
    )
