//! `GET /api/v1/live`: Server-Sent Events, one `reading` event per accepted reading and
//! an `identify` event when a HomeWizard client asks the device to show itself.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

use super::AppState;

/// The event stream. A client too slow to keep up skips readings, never blocks others;
/// the stream ends when the server shuts down.
pub async fn live(State(s): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let mut stop = s.shutdown.clone();
    let readings = BroadcastStream::new(s.live.subscribe())
        .filter_map(|r| r.ok())
        .map(|frame| Ok(Event::default().event("reading").data(frame.as_ref())));
    let identify = BroadcastStream::new(s.identify.subscribe())
        .filter_map(|r| r.ok())
        .map(|()| Ok(Event::default().event("identify").data("{}")));
    let stream = readings.merge(identify);
    let stream = futures_util::StreamExt::take_until(stream, async move {
        let _ = stop.wait_for(|s| *s).await;
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
