//! An entity body read with an inline @context: the first line is the @context (JSON,
//! no remote document is fetched), the rest the entity.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (context, body) = text.split_once('\n').unwrap_or(("[]", text));
    let Ok(context) = serde_json::from_str::<serde_json::Value>(context) else {
        return;
    };
    let Ok(body) = serde_json::from_str::<serde_json::Value>(body) else {
        return;
    };
    let Ok(ctx) = ngsi::Context::build(&context, &|_| None) else {
        return;
    };
    let reader = ngsi::entity::Reader {
        ctx: &ctx,
        now: chrono::Utc::now(),
    };
    if let Ok(entity) = reader.entity(&body, None) {
        // What was read renders.
        let opts = ngsi::render::RenderOptions::new(&ctx);
        let _ = ngsi::render::render_entity(&entity, &opts);
    }
});
