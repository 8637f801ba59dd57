//! Paged lists: `{items, page, size, totalElements, totalPages}` (API.md section 4).

use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// The largest page size a list accepts.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Which page to read: `page` from 0, `size` from 1 to [`MAX_PAGE_SIZE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// The page, from 0.
    pub page: u32,
    /// Items per page.
    pub size: u32,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest { page: 0, size: 20 }
    }
}

impl PageRequest {
    /// A page request from optional query values; 400 `invalid_page` when out of range.
    pub fn new(page: Option<i64>, size: Option<i64>) -> Result<PageRequest, ServiceError> {
        let page = page.unwrap_or(0);
        let size = size.unwrap_or(20);
        if !(0..=1_000_000).contains(&page) {
            return Err(ServiceError::invalid("invalid_page", "page must be between 0 and 1000000"));
        }
        if !(1..=MAX_PAGE_SIZE as i64).contains(&size) {
            return Err(ServiceError::invalid("invalid_page", format!("size must be between 1 and {MAX_PAGE_SIZE}")));
        }
        Ok(PageRequest { page: page as u32, size: size as u32 })
    }

    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        self.page as u64 * self.size as u64
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// The page, from 0.
    pub page: u32,
    /// The page size asked for.
    pub size: u32,
    /// Items in the whole list.
    pub total_elements: u64,
    /// Pages in the whole list.
    pub total_pages: u64,
}

impl<T> Page<T> {
    /// A page of `items` out of `total_elements`.
    pub fn new(items: Vec<T>, request: PageRequest, total_elements: u64) -> Page<T> {
        Page {
            items,
            page: request.page,
            size: request.size,
            total_elements,
            total_pages: total_elements.div_ceil(request.size.max(1) as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked_and_pages_counted() {
        assert_eq!(PageRequest::new(None, None).unwrap(), PageRequest { page: 0, size: 20 });
        assert_eq!(PageRequest::new(Some(-1), None).unwrap_err().code, "invalid_page");
        assert_eq!(PageRequest::new(None, Some(0)).unwrap_err().code, "invalid_page");
        assert_eq!(PageRequest::new(None, Some(101)).unwrap_err().code, "invalid_page");
        let page = Page::new(vec![1, 2], PageRequest { page: 1, size: 2 }, 5);
        assert_eq!(page.total_pages, 3);
        assert_eq!(PageRequest { page: 3, size: 20 }.offset(), 60);
    }
}
