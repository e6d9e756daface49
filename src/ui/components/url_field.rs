//! A labelled URL field with its button: keeps the typed text until submitted, and follows
//! the value when it changes from outside (address bar, samples).

use web_sys::HtmlInputElement;
use yew::prelude::*;

/// Props of [`UrlField`].
#[derive(Properties, PartialEq)]
pub struct UrlFieldProps {
    /// The field's label.
    pub label: AttrValue,
    /// The current value.
    pub value: AttrValue,
    /// Shown when empty.
    pub placeholder: AttrValue,
    /// The button's text.
    pub button: AttrValue,
    /// Disables the button.
    #[prop_or_default]
    pub disabled: bool,
    /// The trimmed text, on Enter or the button. Relative URLs are allowed, so the field is
    /// `type="text"`: a `type="url"` field would refuse them and never submit.
    pub on_submit: Callback<String>,
}

/// The field and its button, as one form.
#[function_component(UrlField)]
pub fn url_field(props: &UrlFieldProps) -> Html {
    let draft = use_state(|| props.value.to_string());
    {
        let draft = draft.clone();
        use_effect_with(props.value.clone(), move |value| {
            draft.set(value.to_string())
        });
    }
    let on_input = {
        let draft = draft.clone();
        Callback::from(move |e: InputEvent| {
            draft.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_submit = {
        let (draft, cb) = (draft.clone(), props.on_submit.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            cb.emit(draft.trim().to_string());
        })
    };
    html! {
        <form class="row" onsubmit={on_submit}>
            <label class="grow">
                <span>{ props.label.clone() }</span>
                <input type="text" inputmode="url" value={(*draft).clone()} oninput={on_input}
                    placeholder={props.placeholder.clone()} spellcheck="false" autocomplete="off" />
            </label>
            <button type="submit" disabled={props.disabled}>{ props.button.clone() }</button>
        </form>
    }
}
