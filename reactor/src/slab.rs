//! A slab with generation-checked keys, so a stale key (a closed source, a finished task)
//! never reaches the entry that reused its slot.

/// A key into a [`Slab`]: slot index and the generation it was issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Slab<T> {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The key the next `insert` will return.
    pub(crate) fn next_key(&self) -> Key {
        match self.free.last() {
            Some(&index) => Key {
                index,
                gen: self.slots[index as usize].0.wrapping_add(1),
            },
            None => Key {
                index: u32::try_from(self.slots.len()).expect("slab full"),
                gen: 0,
            },
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        match self.free.pop() {
            Some(index) => {
                let slot = &mut self.slots[index as usize];
                slot.0 = slot.0.wrapping_add(1);
                slot.1 = Some(value);
                Key { index, gen: slot.0 }
            }
            None => {
                let index = u32::try_from(self.slots.len()).expect("slab full");
                self.slots.push((0, Some(value)));
                Key { index, gen: 0 }
            }
        }
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slots.get_mut(key.index as usize) {
            Some((gen, Some(v))) if *gen == key.gen => Some(v),
            _ => None,
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|(_, v)| v.as_ref())
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        match self.slots.get_mut(key.index as usize) {
            Some((gen, v @ Some(_))) if *gen == key.gen => {
                self.len -= 1;
                self.free.push(key.index);
                v.take()
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_reused_slots() {
        let mut s = Slab::new();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let next = s.next_key();
        let b = s.insert("b");
        assert_eq!(next, b);
        assert_eq!(a.index, b.index);
        assert!(s.get_mut(a).is_none());
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get_mut(b), Some(&mut "b"));
        assert_eq!(s.len(), 1);
    }
}
