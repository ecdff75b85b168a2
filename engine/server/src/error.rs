//! The one error type at the HTTP edge. Every failure a client sees is
//! `{"error": code, "message": ..., "details": [...]}` with a status from the table in
//! [`ApiError::status`]; internal errors are logged here once and never echoed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use platform_plugin_api::Issue;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Vec<Issue>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn validation(details: Vec<Issue>) -> Self {
        let n = details.len();
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "validation_failed",
            message: format!(
                "{n} problem{} with the input",
                if n == 1 { "" } else { "s" }
            ),
            details,
        }
    }
    pub fn with_details(mut self, details: Vec<Issue>) -> Self {
        self.details = details;
        self
    }
    /// An internal error: logged with its cause, answered with a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred; it has been logged",
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::PoolTimedOut = e {
            return Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is busy; retry shortly",
            );
        }
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = if self.details.is_empty() {
            json!({"error": self.code, "message": self.message})
        } else {
            json!({"error": self.code, "message": self.message, "details": self.details})
        };
        (self.status, axum::Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
